"""How a run shows progress: live on a terminal, plain lines in a CI log, or just the verdict with --quiet."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TextIO

from preflight.model import HostReport, RunSummary
from preflight.render import terminal


class PlainProgress:
    """A line per host as it completes (and each problem under it), then the summary line."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self._stream = stream
        self._quiet = quiet
        self._lock = threading.Lock()

    def host_done(self, host: HostReport) -> None:
        if self._quiet:
            return
        with self._lock:
            print("\n".join(terminal.host_lines(host)), file=self._stream, flush=True)

    def finish(self, summary: RunSummary) -> None:
        print(terminal.summary_line(summary), file=self._stream, flush=True)


class LiveProgress:
    """A progress bar that counts hosts as they complete, then a table of verdicts."""

    def __init__(self, stream: TextIO, hosts: int) -> None:
        # rich loads only for a terminal: CI logs and --quiet runs do without it.
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._console = Console(file=stream)
        self._progress = Progress(
            TextColumn("checking"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("hosts, [red]{task.fields[not_ready]} not ready"),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        self._task = self._progress.add_task("hosts", total=hosts, not_ready=0)
        self._not_ready = 0
        # What the table and the fixes under it show of each host: no evidence but which check a skip waited for.
        self._hosts: list[HostReport] = []
        self._lock = threading.Lock()

    @contextmanager
    def shown(self) -> Iterator[None]:
        with self._progress:
            yield

    def host_done(self, host: HostReport) -> None:
        with self._lock:
            self._not_ready += not host.ready
            self._hosts.append(_shown(host))
            self._progress.update(self._task, advance=1, not_ready=self._not_ready)

    def finish(self, summary: RunSummary) -> None:
        self._console.print(terminal.summary_table(summary, self._hosts))
        self._console.print(terminal.fixes(self._hosts))


def _shown(host: HostReport) -> HostReport:
    """The host as the terminal shows it: evidence kept only where it names the check a skip waited for."""
    checks = tuple(
        replace(check, evidence={"needs": check.evidence["needs"]} if "needs" in check.evidence else {})
        for check in host.checks
    )
    return replace(host, checks=checks)


@contextmanager
def progress_for(stream: TextIO, hosts: int, quiet: bool) -> Iterator[PlainProgress | LiveProgress]:
    """Live progress only on a terminal, and never with --quiet or NO_COLOR (https://no-color.org)."""
    if quiet or not stream.isatty() or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        yield PlainProgress(stream, quiet)
        return
    live = LiveProgress(stream, hosts)
    with live.shown():
        yield live
