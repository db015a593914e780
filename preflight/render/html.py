"""The HTML report: one self-contained page for people, rendered by jinja2 with autoescape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from preflight.model import RunReport
from preflight.render.json import to_document
from preflight.resources import data_dir

TEMPLATE = "report.html.j2"


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
    environment.filters["evidence_text"] = evidence_text
    return environment.get_template(TEMPLATE).render(report=document)


def evidence_text(value: Any) -> str:
    """Evidence as a person reads it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
