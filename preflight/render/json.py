"""The JSON report: a versioned contract that machines read (reports/report.schema.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from preflight.located_yaml import ConfigError
from preflight.model import NOT_READY, CheckResult, HostReport, RunReport, Status
from preflight.resources import data_dir

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
        **({"inventory_sha256": report.inventory_sha256} if report.inventory_sha256 else {}),
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
        "port": check.port,
        "purpose": check.purpose,
    }


def load_document(path: Path) -> dict[str, Any]:
    """A saved report, checked against the schema; ConfigError (one line) if it is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON report: {exc}") from None
    import jsonschema  # only re-rendering a saved report needs it

    schema = json.loads((data_dir("reports") / "report.schema.json").read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(document))
    if error is not None:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        raise ConfigError(f"{path}: {where.lstrip('.') or 'top level'}: {error.message}")
    _refuse_contradictions(path, document)
    return dict(document)


def _refuse_contradictions(path: Path, document: Mapping[str, Any]) -> None:
    """Refuse a report whose verdicts disagree with its own checks.

    Refused rather than recomputed: such a report was edited or damaged, and a page that quietly disagreed with the
    JSON it came from would leave support with two answers. A new `preflight check` gives one.
    """
    again = "the report was edited or damaged; run preflight check again"
    ready_hosts = 0
    for index, host in enumerate(document["hosts"]):
        blocking = [check for check in host["checks"] if Status(check["status"]) in NOT_READY]
        ready = not blocking
        ready_hosts += ready
        if host["ready"] != ready:
            why = f"{blocking[0]['id']} is {blocking[0]['status']}" if blocking else "no check failed"
            raise ConfigError(f"{path}: hosts[{index}].ready: says {_json(host['ready'])} but {why}; {again}")
    total = len(document["hosts"])
    summary = document["summary"]
    truth = {"hosts": total, "ready": ready_hosts, "not_ready": total - ready_hosts}
    for key, value in truth.items():
        if summary[key] != value:
            raise ConfigError(
                f"{path}: summary.{key}: says {summary[key]} but the hosts' checks make it {value} "
                f"({ready_hosts} of {total} host(s) ready); {again}"
            )


def _json(value: Any) -> str:
    return json.dumps(value)


def render(report: RunReport) -> str:
    return json.dumps(to_document(report), indent=2, ensure_ascii=False) + "\n"
