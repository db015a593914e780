"""Wall time, CPU time and peak memory of one command, measured for that process alone."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Usage:
    wall_seconds: float
    # User plus system CPU of the process and the children it waited for (wait4 rusage).
    cpu_seconds: float
    peak_rss_mb: float
    status: int


def measured(command: Sequence[str], output: Path, env: Mapping[str, str] | None = None) -> Usage:
    """Wall and CPU seconds, peak RSS in MB (the process's own, from wait4) and exit status; output goes to `output`."""
    with output.open("w") as sink:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Usage(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode)


def timed(command: Sequence[str], output: Path, env: Mapping[str, str] | None = None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB (the process's own, from wait4) and exit status; output goes to `output`."""
    usage = measured(command, output, env)
    return usage.wall_seconds, usage.peak_rss_mb, usage.status
