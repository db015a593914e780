"""/api/v1: JSON in, JSON out. Submissions need a bearer token; a check's id is the capability to read it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from preflight import __version__
from preflight.probes import registry
from preflight.service import accounts
from preflight.service.core import NoWorker
from preflight.service.intake import MAX_TEXT, IntakeError, from_document
from preflight.service.pages import client_of, service_of
from preflight.service.policy import RateLimited
from preflight.service.store import QUEUED, RUNNING

NO_WORKER_RETRY_SECONDS = 30
# The longest a status answer waits for a change (?wait=N), below the read timeouts of common proxies (60 s).
MAX_WAIT_SECONDS = 30
RECHECK_SECONDS = 1.0
BODY_KEYS = ("ticket", "contact", "inventory", "vantages", "only")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def create_check(request: Request) -> Response:
    service = service_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    owner = accounts.token_owner(service.store, token.strip()) if scheme.lower() == "bearer" else None
    if owner is None:
        return error(401, "a valid API token is required: Authorization: Bearer <token> (preflight tokens add NAME)",
                     {"WWW-Authenticate": 'Bearer realm="preflight"'})
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error(400, f"the body is not JSON: {exc}")
    if not isinstance(body, dict):
        return error(400, "the body must be a JSON object with 'ticket' and 'inventory'")
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        # A key is the client's text: quoted unless it is a plain name, so no newline or control character shows.
        shown = unknown[0] if unknown[0].isidentifier() else json.dumps(unknown[0])
        return error(422, f"{shown}: unknown key; expected one of: {', '.join(BODY_KEYS)}")
    ticket, contact = body.get("ticket", ""), body.get("contact", "")
    if not isinstance(ticket, str) or not ticket.strip() or len(ticket) > MAX_TEXT:
        return error(422, f"ticket: must be the ticket reference, a string of 1 to {MAX_TEXT} characters")
    if not isinstance(contact, str) or len(contact) > 320:
        return error(422, "contact: must be an e-mail address (a string of at most 320 characters)")
    if "inventory" not in body:
        return error(422, "inventory: is required (the YAML inventory's shape: defaults, hosts)")
    vantages = body.get("vantages", [])
    if not isinstance(vantages, list) or not all(isinstance(name, str) for name in vantages) or len(vantages) > 32:
        return error(422, "vantages: must be a list of vantage names, such as [\"eu\", \"us\"]")
    only = body.get("only", [])
    known = sorted(registry())
    if not isinstance(only, list) or not all(isinstance(kind, str) and kind in known for kind in only):
        return error(422, f"only: must be a list of check kinds from: {', '.join(known)}")
    client = client_of(request)

    def accept() -> str:
        submission = from_document(body["inventory"], service.profiles, service.policy, service.config.max_hosts)
        return service.submit(
            submission,
            ticket=ticket.strip(),
            contact=contact.strip(),
            source="api",
            submitted_by=owner,
            client=client,
            limit_client=True,
            vantages=vantages,
            only=only,
        )

    try:
        # A name's lookup (up to its deadline) and the database writes block: off the event loop, so one slow
        # submission does not hold up every other request.
        check_id = await run_in_threadpool(accept)
    except IntakeError as exc:
        return error(422, str(exc))
    except RateLimited as exc:
        return error(429, str(exc), {"Retry-After": str(exc.retry_after)})
    except NoWorker as exc:
        return error(503, str(exc), {"Retry-After": str(NO_WORKER_RETRY_SECONDS)})
    return JSONResponse({"id": check_id, "status_url": f"/api/v1/checks/{check_id}"}, status_code=202,
                        headers={"Location": f"/api/v1/checks/{check_id}"})


async def get_check(request: Request) -> Response:
    since_text = request.query_params.get("since", "0")
    if not _whole(since_text, 9):
        return error(400, "since: must be a whole number, the count of results already seen")
    wait_text = request.query_params.get("wait", "0")
    if not _whole(wait_text, 3) or int(wait_text) > MAX_WAIT_SECONDS:
        return error(400, f"wait: must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}")
    service, check_id = service_of(request), request.path_params["check_id"]
    since, wait = int(since_text), int(wait_text)
    # Watched before it is read, so that a change between the read and the wait is not missed.
    with service.changes.watch(check_id) as watch:
        # Database reads block: off the event loop, so polling clients never hold up submissions.
        view = await run_in_threadpool(service.view, check_id, since)
        if view is None:
            return error(404, "no such check")
        if wait:
            view = await _changed(service, watch, view, check_id, since, wait)
    row = view["row"]
    return JSONResponse({
        "id": row.id,
        "state": row.state,
        "ticket": row.ticket,
        "progress": {"done": row.done, "total": row.total},
        # Results from the `since`-th on (at most 1000 an answer): a poller asks only for what it has not seen.
        "results_since": since,
        "wait": wait,
        "checked_from": view["egress"],
        "results": [
            {"host": result.host, "vantage": result.vantage, "id": result.result_id, "status": result.status,
             "summary": result.summary}
            for result in view["results"]
        ],
        "error": row.error,
        "report": view["report"],
        "links": {
            "page": f"/checks/{row.id}",
            "report_json": f"/api/v1/checks/{row.id}/report.json",
            "signature": f"/api/v1/checks/{row.id}/report.json.sig",
            "report_html": f"/api/v1/checks/{row.id}/report.html",
        },
    })


def _whole(text: str, digits: int) -> bool:
    """ASCII digits only, at most `digits` of them (str.isdigit alone takes "²", which int() refuses)."""
    return 0 < len(text) <= digits and text.isascii() and text.isdigit()


async def _changed(service: Any, watch: Any, view: dict[str, Any], check_id: str, since: int,
                   wait: int) -> dict[str, Any]:
    """The check once it changes (its state or its count of results), or as it is after `wait` seconds: a client
    learns of a change as it happens, without asking every fraction of a second."""
    first = (view["row"].state, view["row"].done)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait
    while view["row"].state in (QUEUED, RUNNING):
        left = give_up - loop.time()
        if left <= 0:
            break
        # Woken by this process's commits; read again now and then all the same, for a change made elsewhere.
        woken = await watch.changed(min(left, RECHECK_SECONDS))
        view = await run_in_threadpool(service.view, check_id, since) or view
        if woken or (view["row"].state, view["row"].done) != first:
            break
    return view


async def vantages(request: Request) -> Response:
    """The vantages a check can be asked for now: those with a live worker (none when checks run in-process)."""
    service = service_of(request)
    return JSONResponse({"queue": bool(service.config.queue_url), "vantages": list(service.live_vantages())})


async def signing_key(request: Request) -> Response:
    return PlainTextResponse(service_of(request).public_key_line + "\n")


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_ID = [{"name": "check_id", "in": "path", "required": True, "schema": {"type": "string"}}]
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "preflight service", "version": __version__,
             "description": "Checks PBXware and SERVERware hosts from support's network and signs the reports."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/api/v1/checks": {"post": {
            "summary": "Queue a check of the hosts of an inventory",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, **_json({
                "type": "object", "required": ["ticket", "inventory"], "additionalProperties": False,
                "properties": {
                    "ticket": {"type": "string", "maxLength": MAX_TEXT},
                    "contact": {"type": "string", "maxLength": 320},
                    "only": {"type": "array", "items": {"type": "string"},
                             "description": "Run only these kinds of check (as preflight check --only)"},
                    "vantages": {"type": "array", "items": {"type": "string"}, "maxItems": 32,
                                 "description": "Vantages to check from (a service with workers); default: every "
                                 "vantage with a live worker"},
                    "inventory": {"type": "object", "description": "The YAML inventory's shape (defaults, hosts), "
                                  "secrets inline; key files are not accepted."},
                }})},
            "responses": {
                "202": {"description": "Queued", **_json({"type": "object", "required": ["id", "status_url"],
                        "properties": {"id": {"type": "string"}, "status_url": {"type": "string"}}})},
                "400": {"description": "The body is not a JSON object", **_json(_ERROR)},
                "401": {"description": "No valid token", **_json(_ERROR)},
                "413": {"description": "The body is over the size limit", **_json(_ERROR)},
                "422": {"description": "An inventory error or a refused target, in one line", **_json(_ERROR)},
                "429": {"description": "Over a rate limit; see Retry-After", **_json(_ERROR)},
                "503": {"description": "No worker is connected to the queue yet; see Retry-After", **_json(_ERROR)},
            }}},
        "/api/v1/checks/{check_id}": {"get": {
            "summary": "A check's state, progress and (when done) its report",
            "parameters": [*_ID,
                           {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0},
                            "description": "The count of results already seen: only later ones are listed"},
                           {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                                     "maximum": MAX_WAIT_SECONDS},
                            "description": "Seconds to wait for the check to change (state or progress) before "
                                           "answering; the answer comes at once for a check that is done or failed"}],
            "responses": {"200": {"description": "The check", **_json({"type": "object", "properties": {
                "id": {"type": "string"},
                "state": {"enum": ["queued", "running", "done", "failed"]},
                "progress": {"type": "object", "properties": {"done": {"type": "integer"},
                                                              "total": {"type": "integer"}}},
                "report": {"type": ["object", "null"], "description": "The report document (report.schema.json)"},
            }})}, "404": {"description": "No such check", **_json(_ERROR)}}}},
        "/api/v1/checks/{check_id}/report.json": {"get": {
            "summary": "The report, the exact bytes that were signed", "parameters": _ID,
            "responses": {"200": {"description": "The report"}, "404": {"description": "Not done"}}}},
        "/api/v1/checks/{check_id}/report.json.sig": {"get": {
            "summary": "The SSH signature (namespace preflight-report) of report.json", "parameters": _ID,
            "responses": {"200": {"description": "Armored SSH signature"}, "404": {"description": "Not done"}}}},
        "/api/v1/checks/{check_id}/report.html": {"get": {
            "summary": "The report as a page", "parameters": _ID,
            "responses": {"200": {"description": "HTML"}, "404": {"description": "Not done"}}}},
        "/api/v1/vantages": {"get": {
            "summary": "The vantages with a live worker, which a check may ask for",
            "responses": {"200": {"description": "The vantages", **_json({"type": "object", "properties": {
                "queue": {"type": "boolean"}, "vantages": {"type": "array", "items": {"type": "string"}}}})}}}},
        "/api/v1/signing-key": {"get": {
            "summary": "The service's public key, one line in OpenSSH format",
            "responses": {"200": {"description": "ssh-ed25519 AAAA... preflight"}}}},
    },
}
