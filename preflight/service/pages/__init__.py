"""The server-rendered pages, one module each; this module holds what they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from preflight.service import csrf
from preflight.service.core import Service

# Autoescape on for every template: select_autoescape()'s default knows .html but not our .html.j2 names.
templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"), autoescape=True))


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class _LazyToken:
    """The session's CSRF token, made only when a template writes it into a form.

    A page without a form then sets no cookie: a cross-site request arrives without the SameSite=Strict session
    cookie, and a fresh session in its answer would replace the browser's own (signing an engineer out and
    voiding a customer's open form).
    """

    def __init__(self, request: Request) -> None:
        self._request = request

    def __str__(self) -> str:
        return csrf.token(self._request)

    def __html__(self) -> str:
        return str(self)


def page(request: Request, name: str, context: dict[str, Any], status: int = 200,
         headers: dict[str, str] | None = None) -> Response:
    """A page from templates/, with the CSRF token and the signed-in engineer (if any) in its context."""
    context = {"csrf_token": _LazyToken(request), "user": request.session.get("user"), **context}
    return templates.TemplateResponse(request, name, context, status_code=status, headers=headers)
