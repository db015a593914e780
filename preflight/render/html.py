"""The HTML report: one self-contained page for people, rendered by jinja2 with autoescape.

The page leads with what to do: hosts that are not ready first, and under each the checks that did not pass,
in the order to fix them, with the checks a failure blocked folded under it. Passes are collapsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from preflight.model import RunReport
from preflight.render.json import to_document
from preflight.resources import data_dir

TEMPLATE = "report.html.j2"
BLOCKING = ("fail", "error")


def render(report: RunReport) -> str:
    return render_document(to_document(report))


def render_document(document: Mapping[str, Any]) -> str:
    """The page for a report document (the JSON contract), so a saved report renders the same way."""
    import jinja2  # loaded only when an HTML report is asked for

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("reports")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["evidence_kind"] = evidence_kind
    hosts = sorted(document["hosts"], key=lambda host: bool(host["ready"]))
    return environment.get_template(TEMPLATE).render(
        report=document, hosts=[host_view(host) for host in hosts], ready=all(h["ready"] for h in hosts)
    )


def host_view(host: Mapping[str, Any]) -> dict[str, Any]:
    """A host's checks sorted for a reader: what to fix (in order, each with what it blocks), warnings, passes."""
    checks: Sequence[Mapping[str, Any]] = host["checks"]
    by_id = {check["id"]: check for check in checks}
    blocked: dict[str, list[Mapping[str, Any]]] = {}
    fixes: list[Mapping[str, Any]] = []
    for check in checks:
        if check["status"] == "skipped":
            cause = root_cause(check, by_id)
            if cause is not None and cause["status"] != "skipped":
                blocked.setdefault(cause["id"], []).append(check)
                continue
        if check["status"] in (*BLOCKING, "skipped"):
            fixes.append(check)
    # The profile orders the checks as they depend on each other (address, ports, services, logins), so the
    # report's own order is the order to fix them in; a cause that is only a warning still heads its list.
    return {
        "host": host,
        "fixes": [{"check": check, "blocked": blocked.get(check["id"], [])} for check in fixes],
        "warnings": [
            {"check": check, "blocked": blocked.get(check["id"], [])} for check in checks if check["status"] == "warn"
        ],
        "passed": [check for check in checks if check["status"] == "pass"],
    }


def root_cause(check: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first check, following `evidence.needs` from a skipped one, that was not itself skipped."""
    seen = {check["id"]}
    current = check
    while current["status"] == "skipped":
        needs = (current.get("evidence") or {}).get("needs")
        if not isinstance(needs, str) or needs in seen or needs not in by_id:
            return None
        seen.add(needs)
        current = by_id[needs]
    return current


def evidence_kind(value: Any) -> str:
    """How the template shows a piece of evidence: a nested list of keys, a list, or one value."""
    if isinstance(value, Mapping):
        return "mapping" if value else "empty"
    if isinstance(value, list | tuple):
        if not value:
            return "empty"
        return "values" if all(not isinstance(item, Mapping | list | tuple) for item in value) else "list"
    return "value"
