"""The result types that flow from probes to renderers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    WARN = "warn"
    ERROR = "error"
    SKIPPED = "skipped"


NOT_READY = frozenset({Status.FAIL, Status.ERROR})


@dataclass(frozen=True, slots=True)
class Finding:
    """What a probe saw; the runner turns it into a CheckResult."""

    status: Status
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    remediation: str = ""


@dataclass(frozen=True, slots=True)
class CheckResult:
    id: str
    requirement: str
    status: Status
    summary: str
    evidence: Mapping[str, Any]
    remediation: str
    duration_ms: float
    port: int | None = None
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class HostReport:
    name: str
    product: str
    address: str
    ip: str | None
    checks: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return not any(check.status in NOT_READY for check in self.checks)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run without its hosts' results: what a report says around them, whole once the last host is done."""

    tool_version: str
    started_at: str
    finished_at: str
    prober_hostname: str
    prober_addresses: tuple[str, ...]
    host_count: int
    ready_hosts: int
    warnings: tuple[str, ...] = ()
    inventory_sha256: str | None = None

    @property
    def not_ready_hosts(self) -> int:
        return self.host_count - self.ready_hosts


@dataclass(frozen=True, slots=True)
class RunReport:
    tool_version: str
    started_at: str
    finished_at: str
    prober_hostname: str
    prober_addresses: tuple[str, ...]
    hosts: tuple[HostReport, ...]
    # About the run rather than a host: an inventory that others can read, say.
    warnings: tuple[str, ...] = ()
    inventory_sha256: str | None = None

    @property
    def ready_hosts(self) -> int:
        return sum(1 for host in self.hosts if host.ready)

    @property
    def ready(self) -> bool:
        return all(host.ready for host in self.hosts)

    @property
    def summary(self) -> RunSummary:
        """The run around its hosts, as a report streamed host by host has it."""
        return RunSummary(
            tool_version=self.tool_version,
            started_at=self.started_at,
            finished_at=self.finished_at,
            prober_hostname=self.prober_hostname,
            prober_addresses=self.prober_addresses,
            host_count=len(self.hosts),
            ready_hosts=self.ready_hosts,
            warnings=self.warnings,
            inventory_sha256=self.inventory_sha256,
        )
