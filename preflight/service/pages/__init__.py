"""The server-rendered pages, one module each; this module holds what they share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from preflight.service import csrf
from preflight.service.core import Service

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def page(request: Request, name: str, context: dict[str, Any], status: int = 200,
         headers: dict[str, str] | None = None) -> Response:
    """A page from templates/, with the CSRF token and the signed-in engineer (if any) in its context."""
    context = {"csrf_token": csrf.token(request), "user": request.session.get("user"), **context}
    return templates.TemplateResponse(request, name, context, status_code=status, headers=headers)
