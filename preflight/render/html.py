"""The HTML report: one self-contained page for people, rendered by jinja2 with autoescape.

The page leads with what to do: hosts that are not ready first, and under each the checks that did not pass,
in the order to fix them, with the checks a failure blocked folded under it. Passes are collapsed. A report made from
several vantages shows each host's verdict, a vantage-by-check matrix of the checks the vantages disagree on, then
the same "what to fix" list for each vantage the host is not ready from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from preflight import vantages
from preflight.model import RunReport
from preflight.render import causes
from preflight.render.json import to_document
from preflight.resources import data_dir

TEMPLATE = "report.html.j2"


def render(report: RunReport) -> str:
    return render_document(to_document(report))


def render_document(document: Mapping[str, Any]) -> str:
    """The page for a report document (the JSON contract), so a saved report renders the same way."""
    return "".join(generate(document, lambda: document["hosts"]))


def generate(report: Mapping[str, Any], hosts: Callable[[], Iterable[Mapping[str, Any]]]) -> Iterator[str]:
    """The page piece by piece, for a report of any size: `report` is the document (its hosts are not read), and
    each call of `hosts` reads its hosts again from the first, as a spool on disk can; one host is held at a time.

    The page lists hosts that are not ready first, so it reads them twice: in the list of verdicts, then in detail.
    """
    import jinja2  # loaded only when an HTML report is asked for

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("reports")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["evidence_kind"] = evidence_kind
    multi = vantages.is_multi(report)
    return environment.get_template(TEMPLATE).generate(
        report=report,
        hosts=_HostViews(hosts, multi_host_view if multi else host_view),
        ready=report["summary"]["not_ready"] == 0,
        multi=multi,
    )


class _HostViews:
    """The hosts as the page shows them, not ready first (else in report order), read afresh each time."""

    def __init__(
        self, hosts: Callable[[], Iterable[Mapping[str, Any]]], view: Callable[[Mapping[str, Any]], dict[str, Any]]
    ) -> None:
        self._hosts = hosts
        self._view = view

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for ready in (False, True):
            for host in self._hosts():
                if bool(host["ready"]) is ready:
                    yield self._view(host)


def host_view(host: Mapping[str, Any]) -> dict[str, Any]:
    """A host's checks sorted for a reader: what to fix (in order, each with what it blocks), warnings, passes."""
    checks: Sequence[Mapping[str, Any]] = host["checks"]
    grouped = causes.group([causes.Row(c["id"], c["status"], _needs(c)) for c in checks])
    return {
        "host": host,
        "fixes": [{"check": checks[p.index], "blocked": [checks[i] for i in p.blocked]} for p in grouped.problems],
        "warnings": [{"check": checks[index], "blocked": []} for index in grouped.warnings],
        "passed": [checks[index] for index in grouped.passes],
    }


def multi_host_view(host: Mapping[str, Any]) -> dict[str, Any]:
    """A host checked from several vantages: its verdict, the checks the vantages disagree on, each result set."""
    return {
        "host": host,
        # The stored verdict, cut where it names a vantage, so each part can be coloured by what it says.
        "verdict": [{"text": part, "not_ready": part.startswith("NOT ready")} for part in host["verdict"].split("; ")],
        "rows": [
            {
                "id": check_id,
                "cells": [None if c is None else {"status": c["status"], "seen": vantages.observed(c)} for c in cells],
            }
            for check_id, cells in vantages.matrix(host)
        ],
        "results": [
            {**host_view(result), "name": result["name"], "ready": result["ready"]} for result in host["vantages"]
        ],
    }


def _needs(check: Mapping[str, Any]) -> str | None:
    needs = (check.get("evidence") or {}).get("needs")
    return needs if isinstance(needs, str) else None


def evidence_kind(value: Any) -> str:
    """How the template shows a piece of evidence: a nested list of keys, a list, or one value."""
    if isinstance(value, Mapping):
        return "mapping" if value else "empty"
    if isinstance(value, list | tuple):
        if not value:
            return "empty"
        return "values" if all(not isinstance(item, Mapping | list | tuple) for item in value) else "list"
    return "value"
