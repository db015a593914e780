"""`/support`: the engineers' view behind a login: every check, filtered by ticket or address."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from preflight.service import accounts, csrf
from preflight.service.pages import client_of, page, service_of

# Failed sign-ins per client address: at most this many in this many seconds.
MAX_FAILED_LOGINS, FAILED_LOGIN_WINDOW = 10, 900.0
_failed: defaultdict[str, deque[float]] = defaultdict(deque)
_failed_lock = threading.Lock()


async def dashboard(request: Request) -> Response:
    if not request.session.get("user"):
        return RedirectResponse("/support/login", status_code=303)
    query = request.query_params.get("q", "").strip()[:200]
    checks = service_of(request).store.list_checks(query)
    return page(request, "support.html.j2", {"checks": checks, "query": query})


async def login_form(request: Request) -> Response:
    return page(request, "login.html.j2", {"error": "", "name": ""})


async def login(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    name = str(form.get("name", ""))[:100]
    if not csrf.valid(request, form):
        return page(request, "login.html.j2", {"error": "The form expired; sign in again.", "name": name}, status=403)
    client = client_of(request)
    now = time.monotonic()
    with _failed_lock:
        recent = _failed[client]
        while recent and recent[0] < now - FAILED_LOGIN_WINDOW:
            recent.popleft()
        if len(recent) >= MAX_FAILED_LOGINS:
            retry = int(recent[0] + FAILED_LOGIN_WINDOW - now) + 1
            return page(request, "login.html.j2", {"error": "Too many failed sign-ins; wait and try again.",
                                                   "name": name}, status=429, headers={"Retry-After": str(retry)})
    if not accounts.check_password(service_of(request).store, name, str(form.get("password", ""))[:1024]):
        with _failed_lock:
            _failed[client].append(now)
        return page(request, "login.html.j2", {"error": "Wrong name or password.", "name": name}, status=401)
    request.session.clear()  # a new session on sign-in: no fixation
    request.session["user"] = name
    return RedirectResponse("/support", status_code=303)


async def logout(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=2)
    if csrf.valid(request, form):
        request.session.clear()
    return RedirectResponse("/", status_code=303)
