"""`/checks/<id>`: one check's progress, then its verdict, every failure with its fix, and the signed report."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from preflight.render import html as html_report
from preflight.service.middleware import REPORT_CSP
from preflight.service.pages import page, service_of
from preflight.service.store import ENDED

NOT_FOUND = "No check has this address. Check the link you were given."


async def show(request: Request) -> Response:
    view = service_of(request).view(request.path_params["check_id"])
    if view is None:
        return page(request, "message.html.j2", {"title": "No such check", "message": NOT_FOUND}, status=404)
    return page(request, "check.html.j2", {**view, "failures": failures(view["report"]),
                                           "verdicts": verdicts(view["report"]),
                                           "ended": view["row"].state in ENDED})


def failures(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every check that did not pass, per host (and per vantage, when there are several), in the report's order
    (a port before the login that needs it)."""
    if report is None:
        return []
    found = []
    for host in report["hosts"]:
        seen = [(f"{host['name']} from {result['name']}", result["checks"]) for result in host["vantages"]] \
            if "vantages" in host else [(host["name"], host["checks"])]
        for where, checks in seen:
            found += [{"host": where, **check} for check in checks if check["status"] != "pass"]
    return found


def verdicts(report: dict[str, Any] | None) -> list[tuple[str, bool, str]]:
    """Per host, from several vantages: (host, ready, "ready from eu; NOT ready from us: tcp/2020 filtered")."""
    if report is None or report.get("schema_version") != "2":
        return []
    return [(host["name"], host["ready"], host["verdict"]) for host in report["hosts"]]


async def report_json(request: Request) -> Response:
    service = service_of(request)
    row = service.store.get(request.path_params["check_id"])
    if row is not None and row.report_file is not None:
        # A report of thousands of hosts is a file, sent as it was signed, never loaded whole.
        return FileResponse(service.config.state / row.report_file, media_type="application/json",
                            headers={"Content-Disposition": 'inline; filename="report.json"'})
    if row is None or row.report_json is None:
        return PlainTextResponse("no report (yet) for this check\n", status_code=404)
    # The exact bytes that were signed: never re-serialized.
    return Response(row.report_json.encode(), media_type="application/json",
                    headers={"Content-Disposition": 'inline; filename="report.json"'})


async def report_signature(request: Request) -> Response:
    row = service_of(request).store.get(request.path_params["check_id"])
    if row is None or row.report_sig is None:
        return PlainTextResponse("no report (yet) for this check\n", status_code=404)
    return PlainTextResponse(row.report_sig, headers={"Content-Disposition": 'inline; filename="report.json.sig"'})


async def report_html(request: Request) -> Response:
    view = service_of(request).view(request.path_params["check_id"])
    if view is not None and view["row"].report_file is not None:
        return page(request, "message.html.j2", {
            "title": "This report is too large for one page",
            "message": f"It covers {view['row'].total} checks. Download report.json (and its signature) from the "
            "check's page, and render it with preflight render.",
        }, status=404)
    if view is None or view["report"] is None:
        return PlainTextResponse("no report (yet) for this check\n", status_code=404)
    return Response(html_report.render_document(view["report"]), media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": REPORT_CSP})
