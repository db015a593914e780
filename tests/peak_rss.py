"""A command's peak RSS, measured so that only the command counts: a fresh small interpreter forks it and reads wait4.

Linux counts the memory a process had when it forked in its child's ru_maxrss, so a child of pytest itself would
report at least pytest's own size (170 MiB late in a full run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from tests.lab import REPO

_MEASURE = """
import json, os, subprocess, sys, threading
child = subprocess.Popen(sys.argv[3:])
# A run that hangs is killed, so the test fails on its exit code and elapsed time instead of hanging too.
killer = threading.Timer(float(sys.argv[2]), child.kill)
killer.start()
_, status, usage = os.wait4(child.pid, 0)
killer.cancel()
with open(sys.argv[1], "w") as out:
    json.dump({"exit_code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}, out)
"""


def measured_run(
    command: list[str],
    rusage_file: Path,
    kill_after: float,
    *,
    out: IO[Any] | None = None,
    err: IO[Any] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> tuple[int, int]:
    """Run `command` to its end (killed after `kill_after` s); its exit code and its peak RSS in bytes."""
    measure = [sys.executable, "-c", _MEASURE, str(rusage_file), str(kill_after)]
    subprocess.run([*measure, *command], stdout=out, stderr=err, env=env, cwd=cwd, timeout=kill_after + 30)
    usage = json.loads(rusage_file.read_text())
    # Linux reports ru_maxrss in KiB.
    return int(usage["exit_code"]), int(usage["maxrss_kib"]) * 1024
