"""What a person sees in the terminal: plain lines for CI logs, a rich table for a TTY. Pure functions.

Both list every problem of a host with its fix, in the order to fix them; a check that a failure kept from
running is named on its cause's line rather than printed again, so a host with nothing reachable prints one
line per cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from preflight.model import CheckResult, HostReport, RunReport, Status
from preflight.render import causes

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

_STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold red",
    Status.SKIPPED: "dim",
}
FIX_INDENT = 10


def problems(host: HostReport) -> list[tuple[CheckResult, list[CheckResult]]]:
    """Each check to fix, in order, with the checks it blocked."""
    checks = host.checks
    grouped = causes.group([causes.Row(check.id, check.status.value, _needs(check)) for check in checks])
    return [(checks[problem.index], [checks[index] for index in problem.blocked]) for problem in grouped.problems]


def warnings(host: HostReport) -> list[CheckResult]:
    return [check for check in host.checks if check.status is Status.WARN]


def _needs(check: CheckResult) -> str | None:
    needs = check.evidence.get("needs")
    return needs if isinstance(needs, str) else None


def _cause_line(check: CheckResult, blocked: list[CheckResult]) -> str:
    line = f"{check.id}: {check.summary}"
    if blocked:
        line += f" (blocks {', '.join(skipped.id for skipped in blocked)})"
    return line


def host_lines(host: HostReport) -> list[str]:
    """A host's verdict, each problem with its fix, then each warning: the plain lines of a CI log."""
    verdict = "READY" if host.ready else "NOT READY"
    lines = [f"{host.name} ({host.product}, {host.address}): {verdict}"]
    for check, blocked in problems(host):
        lines.append(f"  {check.status.value.upper():7} {_cause_line(check, blocked)}")
        lines.append(f"{'':{FIX_INDENT}}fix: {check.remediation}")
    for check in warnings(host):
        lines.append(f"  {check.status.value.upper():7} {check.id}: {check.summary}")
    return lines


def summary_line(report: RunReport) -> str:
    not_ready = len(report.hosts) - report.ready_hosts
    return f"{len(report.hosts)} host(s): {report.ready_hosts} ready, {not_ready} not ready"


def render(report: RunReport) -> str:
    lines = [line for host in report.hosts for line in host_lines(host)]
    return "\n".join([*lines, summary_line(report)]) + "\n"


def summary_table(report: RunReport) -> Table:
    """One row per host: its verdict and how its checks went. Narrow enough for an 80-column terminal."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=summary_line(report), title_justify="left")
    table.add_column("Host", overflow="fold")
    table.add_column("Address", overflow="fold")
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Checks")
    for host in sorted(report.hosts, key=lambda host: host.ready):
        counts = Text()
        for status in Status:
            count = sum(1 for check in host.checks if check.status is status)
            if count:
                counts.append(f"{count} {status.value} ", style=_STYLES[status])
        table.add_row(
            Text(f"{host.name}\n{host.product}"),
            Text(host.address),
            Text("READY", style="bold green") if host.ready else Text("NOT READY", style="bold red"),
            counts,
        )
    return table


def fixes(report: RunReport) -> Group:
    """Under the table: every host that is not ready, and each of its problems with the fix, in order."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Text | Table] = []
    for host in report.hosts:
        host_problems = problems(host)
        if not host_problems:
            continue
        parts.append(Text(f"\n{host.name}: what to fix, in this order", style="bold"))
        steps = Table.grid(padding=(0, 1))
        steps.add_column(justify="right", no_wrap=True)
        steps.add_column(overflow="fold")
        for number, (check, blocked) in enumerate(host_problems, start=1):
            step = Text(check.status.value.upper(), style=_STYLES[check.status])
            step.append(f" {_cause_line(check, blocked)}\n")
            step.append("fix: ", style="bold")
            step.append(check.remediation)
            steps.add_row(f"{number}.", step)
        parts.append(steps)
    return Group(*parts)
