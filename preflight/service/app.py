"""The ASGI app: routes, and the middleware every request passes (security headers, body cap, sessions)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from preflight.service import accounts, api
from preflight.service.core import Service
from preflight.service.middleware import BodyLimit, SecurityHeaders
from preflight.service.pages import check, intake, support

_log = logging.getLogger(__name__)
SESSION_COOKIE = "preflight_session"
SESSION_SECONDS = 8 * 3600


def create_app(service: Service) -> Starlette:
    """The service's web app; its lifespan starts and stops the job runner."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        service.jobs.start()
        try:
            yield
        finally:
            service.jobs.stop()

    routes = [
        Route("/", intake.show, methods=["GET"]),
        Route("/", intake.submit, methods=["POST"]),
        Route("/checks/{check_id}", check.show, methods=["GET"]),
        Route("/checks/{check_id}/report.json", check.report_json, methods=["GET"]),
        Route("/checks/{check_id}/report.json.sig", check.report_signature, methods=["GET"]),
        Route("/checks/{check_id}/report.html", check.report_html, methods=["GET"]),
        Route("/support", support.dashboard, methods=["GET"]),
        Route("/support/login", support.login_form, methods=["GET"]),
        Route("/support/login", support.login, methods=["POST"]),
        Route("/support/logout", support.logout, methods=["POST"]),
        Route("/api/v1/checks", api.create_check, methods=["POST"]),
        Route("/api/v1/checks/{check_id}", api.get_check, methods=["GET"]),
        Route("/api/v1/checks/{check_id}/report.json", check.report_json, methods=["GET"]),
        Route("/api/v1/checks/{check_id}/report.json.sig", check.report_signature, methods=["GET"]),
        Route("/api/v1/checks/{check_id}/report.html", check.report_html, methods=["GET"]),
        Route("/api/v1/signing-key", api.signing_key, methods=["GET"]),
        Route("/api/v1/vantages", api.vantages, methods=["GET"]),
        Route("/api/v1/openapi.json", api.openapi, methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(BodyLimit, limit=service.config.max_body, token_limit=service.config.max_body_token,
                   trusted=lambda token: accounts.token_owner(service.store, token) is not None),
        Middleware(
            SessionMiddleware,
            secret_key=service.session_secret,
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_SECONDS,
            # Lax, not Strict: a link from an e-mail or a ticket then keeps an engineer signed in (a Strict cookie
            # is not sent on it, so the page would start a new session over the old one); every POST has a CSRF token.
            same_site="lax",
            https_only=not service.config.insecure_cookies,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.service = service
    return app


async def _healthz(_request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "error"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": detail}, status_code=status, headers=getattr(exc, "headers", None))
    return PlainTextResponse(f"{status}: {detail}\n", status_code=status, headers=getattr(exc, "headers", None))


async def _server_error(request: Request, exc: Exception) -> Response:
    # A bug of ours, never the client's input: logged here, and the client sees no traceback.
    _log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "the service failed on this request; it has been logged"}, status_code=500)
    return PlainTextResponse("500: the service failed on this request; it has been logged\n", status_code=500)
