"""The JSON report: a versioned contract that machines read (reports/report.schema.json).

A run from one place writes version "1"; a check made from several vantages is version "2" (preflight.vantages).
Both load here, for `preflight render`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from preflight.located_yaml import ConfigError
from preflight.model import NOT_READY, CheckResult, HostReport, RunReport, RunSummary, Status
from preflight.resources import data_dir

SCHEMA_VERSION = "1"


def to_document(report: RunReport) -> dict[str, Any]:
    """The report as plain data, in the shape the schema describes."""
    return {
        "schema_version": SCHEMA_VERSION,
        **run_fields(report.summary),
        "hosts": [host_document(host) for host in report.hosts],
    }


def run_fields(summary: RunSummary) -> dict[str, Any]:
    """Every key of the report but its schema version and its hosts: what a streamed report writes after them."""
    return {
        "tool": {"name": "preflight", "version": summary.tool_version},
        "started_at": summary.started_at,
        "finished_at": summary.finished_at,
        "prober": {"hostname": summary.prober_hostname, "addresses": list(summary.prober_addresses)},
        "summary": {
            "hosts": summary.host_count,
            "ready": summary.ready_hosts,
            "not_ready": summary.not_ready_hosts,
        },
        "warnings": list(summary.warnings),
        **({"inventory_sha256": summary.inventory_sha256} if summary.inventory_sha256 else {}),
    }


def host_document(host: HostReport) -> dict[str, Any]:
    """One host of the report, as plain data."""
    return {
        "name": host.name,
        "product": host.product,
        "address": host.address,
        "ip": host.ip,
        "ready": host.ready,
        "checks": [_check(check) for check in host.checks],
    }


def write_document(
    write: Callable[[str], object],
    schema_version: str,
    hosts: Iterable[Mapping[str, Any]],
    rest: Callable[[], Mapping[str, Any]],
) -> None:
    """Write a report document as JSON piece by piece, never whole in memory: its hosts first, each as it comes,
    then the rest of it, asked for once the last host is written (so nothing about them has to be known before).

    The keys are in another order than `json.dumps` of the document would give, the content is the same. Each host
    is one line, indented by four spaces: `json.dumps` without `indent` runs in C, where an indented host goes
    through Python's own encoder, three times slower (130 ms of a 1,000-host run). The rest is indented two spaces a
    level; `jq . report.json` shows it all indented.
    """
    writer = DocumentWriter(write, schema_version)
    for host in hosts:
        writer.host(host)
    writer.end(rest())


class DocumentWriter:
    """`write_document` for a caller whose hosts arrive over time: `host` as each comes, `end` with the rest."""

    def __init__(self, write: Callable[[str], object], schema_version: str) -> None:
        self._write = write
        self._first = True
        write(f'{{\n  "schema_version": {json.dumps(schema_version)},\n  "hosts": [')

    def host(self, host: Mapping[str, Any]) -> None:
        self.host_text(json.dumps(host, ensure_ascii=False))

    def host_text(self, text: str) -> None:
        """A host already encoded as `host` encodes it: compact JSON on one line."""
        self._write(("\n    " if self._first else ",\n    ") + text)
        self._first = False

    def end(self, rest: Mapping[str, Any]) -> None:
        fields = dict(rest)
        closing = "]" if self._first else "\n  ]"
        if not fields:
            self._write(closing + "\n}\n")
            return
        body = json.dumps(fields, indent=2, ensure_ascii=False)
        self._write(closing + ",\n" + body[2:] + "\n")


def write_report(
    write: Callable[[str], object], hosts: Iterable[HostReport], summary: Callable[[], RunSummary]
) -> None:
    """Write the JSON report of a run as its hosts come (see write_document); `summary` is asked for after them."""
    write_document(write, SCHEMA_VERSION, (host_document(host) for host in hosts), lambda: run_fields(summary()))


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
        text = path.read_text(encoding="utf-8")
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        if "\\u" in text:
            # A lone \ud800-\udfff escape loads as half a character that no page or file can hold.
            json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        problem = "a string holds half of a UTF-16 surrogate pair (\\ud800-\\udfff)"
        raise ConfigError(f"{path}: not a JSON report: {problem}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON report: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a JSON report: nested too deeply") from None
    except ValueError as exc:
        # Python's own limit on digits (sys.get_int_max_str_digits), a duplicate key, NaN or Infinity.
        raise ConfigError(f"{path}: not a JSON report: {_shown(str(exc))}") from None
    import jsonschema  # only re-rendering a saved report needs it

    schema = json.loads((data_dir("reports") / "report.schema.json").read_text(encoding="utf-8"))
    # The first errors are enough to choose the best from: all of them, in a list of 10^6 bad items, take minutes.
    errors = itertools.islice(jsonschema.Draft202012Validator(schema).iter_errors(document), 100)
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        raise ConfigError(f"{path}: {_shown(where.lstrip('.') or 'top level')}: {_shown(error.message)}")
    _refuse_contradictions(path, document)
    return dict(document)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal keys wins, so a report that has them means two things: refused.
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {_shown(json.dumps(key))}")
        seen.add(key)
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_SHOWN_LIMIT = 200


def _shown(text: str) -> str:
    """A message about the file cut to one readable line: jsonschema's messages quote the value, however large."""
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_LIMIT else text[: _SHOWN_LIMIT - 1] + "…"


def _refuse_contradictions(path: Path, document: Mapping[str, Any]) -> None:
    """Refuse a report whose verdicts disagree with its own checks.

    Refused rather than recomputed: such a report was edited or damaged, and a page that quietly disagreed with the
    JSON it came from would leave support with two answers. A new `preflight check` gives one.
    """
    ready_hosts = 0
    for index, host in enumerate(document["hosts"]):
        where = f"hosts[{index}]"
        if "vantages" in host:  # version 2: ready only when ready from every vantage
            names = [vantage["name"] for vantage in document["vantages"]]
            seen = [result["name"] for result in host["vantages"]]
            if seen != names:
                raise ConfigError(
                    f"{path}: {where}.vantages: lists {', '.join(seen)} but the report was made from "
                    f"{', '.join(names)}; {AGAIN}"
                )
            for number, result in enumerate(host["vantages"]):
                _refuse_ready(path, f"{where}.vantages[{number}]", result["ready"], result["checks"])
            ready = all(result["ready"] for result in host["vantages"])
            if host["ready"] != ready:
                why = "every vantage is ready" if ready else f"it is not ready from {_first_not_ready(host)}"
                raise ConfigError(f"{path}: {where}.ready: says {_json(host['ready'])} but {why}; {AGAIN}")
            # The verdict's wording may change between versions; whether it says the host is ready may not.
            unsaid = [r["name"] for r in host["vantages"] if not r["ready"] and r["name"] not in host["verdict"]]
            if unsaid or ready == ("NOT ready from" in host["verdict"]):
                why = "every vantage is ready" if ready else f"it is not ready from {_first_not_ready(host)}"
                raise ConfigError(f"{path}: {where}.verdict: says {_json(host['verdict'])} but {why}; {AGAIN}")
        else:
            ready = _refuse_ready(path, where, host["ready"], host["checks"])
        ready_hosts += ready
    total = len(document["hosts"])
    _refuse_summary(path, "summary", document["summary"], ready_hosts, total)
    for number, vantage in enumerate(document.get("vantages", [])):
        alone = sum(
            1 for host in document["hosts"] if all(r["ready"] for r in host["vantages"] if r["name"] == vantage["name"])
        )
        _refuse_summary(path, f"vantages[{number}].summary", vantage["summary"], alone, total)


AGAIN = "the report was edited or damaged; run preflight check again"


def _refuse_ready(path: Path, where: str, says: bool, checks: Sequence[Mapping[str, Any]]) -> bool:
    blocking = [check for check in checks if Status(check["status"]) in NOT_READY]
    if says != (not blocking):
        why = f"{blocking[0]['id']} is {blocking[0]['status']}" if blocking else "no check failed"
        raise ConfigError(f"{path}: {where}.ready: says {_json(says)} but {why}; {AGAIN}")
    return not blocking


def _first_not_ready(host: Mapping[str, Any]) -> str:
    return next(str(result["name"]) for result in host["vantages"] if not result["ready"])


def _refuse_summary(path: Path, where: str, summary: Mapping[str, Any], ready_hosts: int, total: int) -> None:
    truth = {"hosts": total, "ready": ready_hosts, "not_ready": total - ready_hosts}
    for key, value in truth.items():
        if summary[key] != value:
            raise ConfigError(
                f"{path}: {where}.{key}: says {summary[key]} but the hosts' checks make it {value} "
                f"({ready_hosts} of {total} host(s) ready); {AGAIN}"
            )


def _json(value: Any) -> str:
    return json.dumps(value)


def render(report: RunReport) -> str:
    """The JSON report of a run held whole: the text `write_report` streams."""
    pieces: list[str] = []
    write_report(pieces.append, report.hosts, lambda: report.summary)
    return "".join(pieces)
