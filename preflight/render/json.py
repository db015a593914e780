"""The JSON report: a versioned contract that machines read (reports/report.schema.json)."""

from __future__ import annotations

import json
from typing import Any

from preflight.model import CheckResult, HostReport, RunReport

SCHEMA_VERSION = "1"


def to_document(report: RunReport) -> dict[str, Any]:
    """The report as plain data, in the shape the schema describes."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "preflight", "version": report.tool_version},
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "prober": {"hostname": report.prober_hostname, "addresses": list(report.prober_addresses)},
        "summary": {
            "hosts": len(report.hosts),
            "ready": report.ready_hosts,
            "not_ready": len(report.hosts) - report.ready_hosts,
        },
        "hosts": [_host(host) for host in report.hosts],
        "warnings": list(report.warnings),
    }


def _host(host: HostReport) -> dict[str, Any]:
    return {
        "name": host.name,
        "product": host.product,
        "address": host.address,
        "ip": host.ip,
        "ready": host.ready,
        "checks": [_check(check) for check in host.checks],
    }


def _check(check: CheckResult) -> dict[str, Any]:
    return {
        "id": check.id,
        "requirement": check.requirement,
        "status": check.status.value,
        "summary": check.summary,
        "evidence": dict(check.evidence),
        "remediation": check.remediation,
        "duration_ms": check.duration_ms,
    }


def render(report: RunReport) -> str:
    return json.dumps(to_document(report), indent=2, ensure_ascii=False) + "\n"
