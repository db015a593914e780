"""Wall time and peak memory of one command, measured for that process alone."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def timed(command: Sequence[str], output: Path, env: Mapping[str, str] | None = None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB (the process's own, from wait4) and exit status; output goes to `output`."""
    with output.open("w") as sink:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, process.returncode
