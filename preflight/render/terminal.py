"""What a person sees in the terminal: plain lines for CI logs, a rich table for a TTY. Pure functions.

Both list every problem of a host with its fix, in the order to fix them; a check that a failure kept from
running is named on its cause's line rather than printed again, so a host with nothing reachable prints one
line per cause.

A report made from several vantages (version 2) prints from its document: each host's verdict, a vantage-by-check
matrix of the checks the vantages disagree on, and what to fix for each vantage the host is not ready from.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from preflight import vantages
from preflight.model import CheckResult, HostReport, RunReport, RunSummary, Status
from preflight.render import causes

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

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


def summary_line(summary: RunSummary) -> str:
    return f"{summary.host_count} host(s): {summary.ready_hosts} ready, {summary.not_ready_hosts} not ready"


def render(report: RunReport) -> str:
    lines = [line for host in report.hosts for line in host_lines(host)]
    return "\n".join([*lines, summary_line(report.summary)]) + "\n"


def summary_table(summary: RunSummary, hosts: Sequence[HostReport]) -> Table:
    """One row per host: its verdict and how its checks went. Narrow enough for an 80-column terminal."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=summary_line(summary), title_justify="left")
    table.add_column("Host", overflow="fold")
    table.add_column("Address", overflow="fold")
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Checks")
    for host in sorted(hosts, key=lambda host: host.ready):
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


def fixes(hosts: Sequence[HostReport]) -> Group:
    """Under the table: every host that is not ready, and each of its problems with the fix, in order."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Text | Table] = []
    for host in hosts:
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


# Reports made from several vantages (version 2 documents): the same lines, read from the document.
WIDTH = 80


def document_lines(document: Mapping[str, Any], width: int = WIDTH) -> list[str]:
    """A version 2 report as plain lines: per host its verdict, where the vantages disagree, and what to fix."""
    lines: list[str] = []
    for host in sorted(document["hosts"], key=lambda host: bool(host["ready"])):
        lines.extend(document_host_lines(host, width))
    lines.append(document_summary_line(document))
    return lines


def streamed_document_lines(
    hosts: Callable[[], Iterable[Mapping[str, Any]]], fields: Callable[[], Mapping[str, Any]], width: int = WIDTH
) -> Iterator[str]:
    """document_lines of a report read a host at a time (each call of `hosts` reads them again from the first):
    the hosts that are not ready in one pass, the ready ones in another, then `fields()` (all but the hosts)."""
    for ready in (False, True):
        for host in hosts():
            if bool(host["ready"]) is ready:
                yield from document_host_lines(host, width)
    yield document_summary_line(fields())


def document_host_lines(host: Mapping[str, Any], width: int = WIDTH) -> list[str]:
    """The lines of one host of a version 2 report (document_lines prints the hosts that are not ready first)."""
    verdict = "READY" if host["ready"] else "NOT READY"
    lines = [f"{host['name']} ({host['product']}, {host['address']}): {verdict}"]
    lines.extend(textwrap.wrap(host["verdict"], width, initial_indent="  ", subsequent_indent="    "))
    rows = vantages.matrix(host)
    if rows:
        lines.append("  where the vantages disagree:")
        lines.extend(matrix_lines(host, width - 2, indent="  "))
    # Vantages that fail the same way print their fixes once.
    alike: dict[tuple[tuple[str, str, str], ...], list[Mapping[str, Any]]] = {}
    for result in host["vantages"]:
        if not result["ready"]:
            key = tuple((c["id"], c["status"], c["remediation"]) for c in result["checks"] if c["status"] != "pass")
            alike.setdefault(key, []).append(result)
    for results in alike.values():
        lines.append(f"  from {', '.join(r['name'] for r in results)}, what to fix, in this order:")
        for check, blocked in document_problems(results[0]["checks"]):
            cause = f"{check['id']}: {check['summary']}"
            if blocked:
                cause += f" (blocks {', '.join(skipped['id'] for skipped in blocked)})"
            lines.append(f"  {check['status'].upper():7} {cause}")
            lines.append(f"{'':{FIX_INDENT}}fix: {check['remediation']}")
    return lines


def document_summary_line(fields: Mapping[str, Any]) -> str:
    """The last line of a version 2 report's terminal view, from every key of the document but its hosts."""
    names = [vantage["name"] for vantage in fields["vantages"]]
    summary = fields["summary"]
    return (
        f"{summary['hosts']} host(s): {summary['ready']} ready from every vantage ({', '.join(names)}), "
        f"{summary['not_ready']} not ready"
    )


def render_document(document: Mapping[str, Any], width: int = WIDTH) -> str:
    """The terminal text of a version 2 report."""
    return "\n".join(document_lines(document, width)) + "\n"


def matrix_lines(host: Mapping[str, Any], width: int, indent: str = "") -> list[str]:
    """The vantage-by-check matrix of a host as text no wider than `width`: a row per check the vantages disagree on."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("check", overflow="fold")
    for result in host["vantages"]:
        table.add_column(result["name"], overflow="fold")
    for check_id, cells in vantages.matrix(host):
        table.add_row(check_id, *(_cell(cell) for cell in cells))
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False, markup=False, emoji=False)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return [f"{indent}{line}".rstrip() for line in text.splitlines() if line.strip()]


def _cell(check: Mapping[str, Any] | None) -> Text:
    from rich.text import Text

    if check is None:
        return Text("not run")
    status = check["status"].upper() if check["status"] in causes.BLOCKING else check["status"]
    seen = vantages.observed(check)
    return Text(f"{status} {seen}" if seen else status)


def document_problems(checks: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    """Each check of a result set to fix, in order, with the checks it blocked."""
    rows = [causes.Row(check["id"], check["status"], _document_needs(check)) for check in checks]
    return [(checks[p.index], [checks[i] for i in p.blocked]) for p in causes.group(rows).problems]


def _document_needs(check: Mapping[str, Any]) -> str | None:
    needs = (check.get("evidence") or {}).get("needs")
    return needs if isinstance(needs, str) else None
