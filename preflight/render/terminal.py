"""What a person sees in the terminal: plain lines for CI logs, a rich table for a TTY. Pure functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight.model import HostReport, RunReport, Status

if TYPE_CHECKING:
    from rich.table import Table

_STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold red",
    Status.SKIPPED: "dim",
}


def host_lines(host: HostReport) -> list[str]:
    verdict = "READY" if host.ready else "NOT READY"
    lines = [f"{host.name} ({host.product}, {host.address}): {verdict}"]
    for check in host.checks:
        if check.status is not Status.PASS:
            lines.append(f"  {check.status.value.upper():7} {check.id}: {check.summary}")
    return lines


def summary_line(report: RunReport) -> str:
    not_ready = len(report.hosts) - report.ready_hosts
    return f"{len(report.hosts)} host(s): {report.ready_hosts} ready, {not_ready} not ready"


def render(report: RunReport) -> str:
    lines = [line for host in report.hosts for line in host_lines(host)]
    return "\n".join([*lines, summary_line(report)]) + "\n"


def summary_table(report: RunReport) -> Table:
    """One row per host: the verdict, and the first thing to fix with its remediation."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=summary_line(report), title_justify="left", expand=True)
    table.add_column("Host", no_wrap=True)
    table.add_column("Product")
    table.add_column("Address")
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Checks", no_wrap=True)
    table.add_column("Fix first", ratio=1)
    for host in report.hosts:
        first = next((check for check in host.checks if check.status in (Status.FAIL, Status.ERROR)), None)
        counts = Text()
        for status in Status:
            count = sum(1 for check in host.checks if check.status is status)
            if count:
                counts.append(f"{count} {status.value} ", style=_STYLES[status])
        table.add_row(
            Text(host.name),
            Text(host.product),
            Text(host.address),
            Text("READY", style="bold green") if host.ready else Text("NOT READY", style="bold red"),
            counts,
            Text(f"{first.id}: {first.summary}. {first.remediation}") if first else Text(""),
        )
    return table
