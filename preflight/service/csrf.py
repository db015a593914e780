"""CSRF tokens for every form: a random value kept in the (signed, HttpOnly, SameSite) session cookie, and
echoed in a hidden field; a POST whose field does not match is refused."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

FIELD = "csrf"


def token(request: Request) -> str:
    """The session's token, made on first use."""
    session: dict[str, Any] = request.session
    value = session.get(FIELD)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        session[FIELD] = value
    return value


def valid(request: Request, form: Mapping[str, Any]) -> bool:
    expected = request.session.get(FIELD)
    sent = form.get(FIELD)
    return isinstance(expected, str) and isinstance(sent, str) and hmac.compare_digest(expected, sent)
