"""Plain lines for a terminal or a CI log: one per host, one per check that is not a pass."""

from __future__ import annotations

from preflight.model import HostReport, RunReport, Status


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
