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
