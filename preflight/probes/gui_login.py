"""gui-login/<port>: support must be able to log in to the Web GUI with the credentials you provide.

The login goes over HTTPS on the profile's GUI port. Plain HTTP would send the password in clear, so the
profile's HTTP ports are tried only when the inventory sets `gui.allow_plain_http`, only after HTTPS did not
answer, and a login there is a warning. The GUI may ask for HTTP Basic or Digest authentication, show a login
form, or both; the outcome is decided by evidence, never by the absence of an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.auth import AuthBase

from preflight.certificate_evidence import certificate_evidence
from preflight.deadline import Deadline
from preflight.html_forms import find_login_form, password_field, second_factor_prompt, username_field
from preflight.http_auth import http_auth_for, parse_challenges
from preflight.http_client import DeadlineSession, deadline_session, exception_causes
from preflight.inventory import GuiSettings, Host
from preflight.model import Finding, Status
from preflight.profiles import GuiLogin, Profile
from preflight.target import Target

REQUIREMENT = "Support logs in to the Web GUI on TCP {port} with the GUI username and password you provide."
_BODY_LIMIT = 1 << 20
_MAX_REDIRECTS = 5

_CHECK_CREDENTIALS = (
    "The Web GUI on TCP {port} refused the login: check gui.username and gui.password in the inventory, and log in "
    "once by hand at {url} to confirm them."
)
_REACH_ADVICE = "Make sure TCP {port} is forwarded to the system's Web GUI and that it answers over HTTPS."
_HTTPS_ADVICE = (
    "Forward TCP {port} to the system's Web GUI and make sure it answers over HTTPS. Only if support must log in "
    "over plain HTTP instead, set gui.allow_plain_http: true for this host: the password then crosses the "
    "internet unencrypted."
)
_PLAIN_HTTP_ADVICE = (
    "Forward TCP {https_port} to the system's Web GUI so that support logs in over HTTPS, then remove "
    "gui.allow_plain_http from this host in the inventory."
)
_SECOND_FACTOR_ADVICE = (
    "The Web GUI on TCP {port} asks for a one-time code after the password, and support cannot receive your "
    "codes: give support a Web GUI account without a second factor, or arrange to read support the code when "
    "they log in."
)


def plan(host: Host, profile: Profile) -> list[Target]:
    port = profile.gui_login.port
    # With plain HTTP allowed the login may fall back to an HTTP port, so it cannot wait for the HTTPS port's check.
    needs = None if host.gui.allow_plain_http else f"service/{port}"
    return [
        Target(
            check_id=f"gui-login/{port}",
            requirement=REQUIREMENT.format(port=port),
            host=host,
            profile=profile,
            port=port,
            needs=needs,
        )
    ]


# --- reading pages ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str  # logged-in, second-factor, wrong-credentials, refused, server-error, unconfirmed
    because: str  # the evidence: redirect, session-cookie, success-marker, http-auth-accepted, form-returned, ...


def judge_login(
    status: int,
    body: str,
    *,
    redirected_away: bool,
    has_cookies: bool,
    settings: GuiLogin,
    http_auth: str = "",
) -> Verdict:
    """Decide from what came back after the credentials were sent whether the login worked."""
    if settings.failure_marker and settings.failure_marker in body:
        return Verdict("wrong-credentials", "failure-marker")
    if http_auth and status == 401:
        return Verdict("wrong-credentials", "asked-again")
    login_form_back = find_login_form(body, settings) is not None
    if status >= 500:
        return Verdict("server-error", f"http-{status}")
    if status >= 400:
        return Verdict("wrong-credentials" if login_form_back else "refused", f"http-{status}")
    second_factor = second_factor_prompt(body, settings.second_factor_marker)
    if second_factor is not None:
        return Verdict("second-factor", second_factor)
    if settings.success_marker and settings.success_marker in body:
        return Verdict("logged-in", "success-marker")
    if login_form_back:
        return Verdict("wrong-credentials", "form-returned")
    if http_auth:
        return Verdict("logged-in", "http-auth-accepted")
    if redirected_away:
        return Verdict("logged-in", "redirect")
    if has_cookies:
        return Verdict("logged-in", "session-cookie")
    return Verdict("unconfirmed", "no-redirect-no-cookie")


# --- HTTP authentication ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    url: str
    status: int
    body: str
    redirects: tuple[str, ...]
    www_authenticate: tuple[str, ...] = ()


class _OffOrigin(Exception):
    """A redirect or form action that leaves the GUI's own scheme, host and port."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where)
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class _Origin:
    """The GUI's scheme, port and names (its address and resolved IP); requests always go to the IP."""

    scheme: str
    ip: str
    port: int
    names: frozenset[str]
    address: str = ""  # as the inventory gives it, for the URL a person opens

    @property
    def base(self) -> str:
        return f"{self.scheme}://{_url_host(self.ip)}:{self.port}"

    @property
    def address_url(self) -> str:
        """The login page's URL with the inventory's address, as a person would type it."""
        default_port = 443 if self.scheme == "https" else 80
        port = "" if self.port == default_port else f":{self.port}"
        return f"{self.scheme}://{_url_host(self.address or self.ip)}{port}/"

    def pinned(self, url: str) -> str:
        """`url` aimed at the GUI's IP, or _OffOrigin if it points anywhere else; nothing is sent before this."""
        parts = urlsplit(url)
        default_port = 443 if parts.scheme == "https" else 80
        if (parts.hostname or "").lower() not in self.names or (parts.port or default_port) != self.port:
            raise _OffOrigin(parts.netloc or url, "another host")
        if parts.scheme != self.scheme:
            raise _OffOrigin(
                f"{parts.scheme}://{parts.netloc}", f"{parts.scheme or 'another scheme'}, not {self.scheme}"
            )
        return parts._replace(netloc=f"{_url_host(self.ip)}:{self.port}").geturl()


def _url_host(host: str) -> str:
    """An IP address or DNS name as a URL's host: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


def _fetch(
    session: requests.Session,
    method: str,
    url: str,
    origin: _Origin,
    deadline: Deadline,
    data: dict[str, str] | None = None,
    auth: AuthBase | None = None,
    budget: float | None = None,
) -> _Page:
    """One request, then redirects on the same origin only, with every wait capped by the deadline.

    Every URL is checked before it is requested, so a form, a redirect or an authentication retry can never carry
    the password to another host. `budget` caps each wait below the deadline, leaving time for a fallback.
    """
    redirects: list[str] = []
    for _ in range(_MAX_REDIRECTS + 1):
        url = origin.pinned(url)
        timeout = deadline.cap(deadline.remaining() if budget is None else budget)
        with session.request(
            method, url, data=data, auth=auth, allow_redirects=False, stream=True, timeout=timeout
        ) as response:
            body = response.raw.read(_BODY_LIMIT, decode_content=True).decode(
                response.encoding or "utf-8", errors="replace"
            )
            location = response.headers.get("Location")
            if not (response.is_redirect and location):
                challenges = tuple(response.raw.headers.getlist("WWW-Authenticate"))
                return _Page(url, response.status_code, body, tuple(redirects), challenges)
        url = urljoin(url, location)
        redirects.append(urlsplit(url).path)
        if response.status_code not in (307, 308):
            method, data = "GET", None
    raise requests.TooManyRedirects(f"more than {_MAX_REDIRECTS} redirects")


# --- the check ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    port: int


def login_endpoints(profile: Profile, port: int, allow_plain_http: bool) -> list[Endpoint]:
    """Where to try the login, in order: the GUI port over HTTPS; then, only if allowed, the HTTP GUI ports."""
    required = profile.port(port)
    scheme = "http" if required is not None and required.service == "http" else "https"
    if scheme == "http":
        return [Endpoint("http", port)] if allow_plain_http else []
    endpoints = [Endpoint("https", port)]
    if allow_plain_http:
        endpoints += [Endpoint("http", other.port) for other in profile.ports_for("http") if other.port != port]
    return endpoints


class _NoAnswer(Exception):
    """The endpoint gave no HTTP answer at all (refused, reset, TLS failure, silence): another may be tried."""

    def __init__(self, endpoint: Endpoint, what: str, timed_out: bool) -> None:
        super().__init__(what)
        self.endpoint = endpoint
        self.what = what
        self.timed_out = timed_out


def run(target: Target, deadline: Deadline) -> Finding:
    ip, port = target.endpoint()
    gui = target.host.gui
    if not gui.username or gui.password is None:
        return Finding(
            Status.FAIL,
            "Web GUI username and password not provided",
            {"outcome": "not-provided", "port": port},
            f"Support needs the Web GUI login on TCP {port}: add gui.username and gui.password to this host in the "
            "inventory (the password as ${ENV_VAR}).",
        )
    endpoints = login_endpoints(target.profile, port, gui.allow_plain_http)
    base_evidence: dict[str, Any] = {"plain_http_allowed": gui.allow_plain_http}
    if not endpoints:
        return Finding(
            Status.FAIL,
            f"the Web GUI on TCP {port} is plain HTTP, and a login there would send the password in clear",
            {**base_evidence, "outcome": "plain-http-not-allowed", "scheme": "http", "port": port},
            f"Give support the Web GUI over HTTPS. To accept a login over plain HTTP on TCP {port} anyway, set "
            "gui.allow_plain_http: true for this host: the password then crosses the internet unencrypted.",
        )
    names = frozenset({ip, target.host.address.lower().rstrip(".")})
    failures: list[_NoAnswer] = []
    with deadline_session(deadline) as session:
        for index, endpoint in enumerate(endpoints):
            fallbacks_left = len(endpoints) - index - 1
            origin = _Origin(endpoint.scheme, ip, endpoint.port, names, target.host.address)
            evidence = {**base_evidence, "scheme": endpoint.scheme, "port": endpoint.port, "url": origin.base}
            if failures:
                evidence["not_answered"] = [_failure_text(failure) for failure in failures]
            try:
                return _login(session, origin, gui, target, deadline, evidence, fallbacks_left)
            except _NoAnswer as failure:
                failures.append(failure)
                if deadline.expired:
                    break
    return _nothing_answered(port, failures, base_evidence, gui.allow_plain_http, target.profile)


def _login(
    session: DeadlineSession,
    origin: _Origin,
    gui: GuiSettings,
    target: Target,
    deadline: Deadline,
    evidence: dict[str, Any],
    fallbacks_left: int,
) -> Finding:
    settings = target.profile.gui_login
    evidence["url"] = origin.base + settings.path
    # The first request gets a share of the time, so that a silent HTTPS port leaves time to try plain HTTP.
    budget = deadline.remaining() / (fallbacks_left + 1) if fallbacks_left else None
    page: _Page | None = None
    try:
        page = _fetch(session, "GET", evidence["url"], origin, deadline, budget=budget)
        return _login_answered(session, origin, gui, settings, deadline, evidence, page)
    except _OffOrigin as exc:
        return _off_origin(exc, evidence, origin.port)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        timed_out = _timed_out(exc, deadline)
        if page is None and not isinstance(exc, requests.TooManyRedirects):
            raise _NoAnswer(Endpoint(origin.scheme, origin.port), _what_failed(exc, deadline), timed_out) from None
        evidence["outcome"] = "timeout" if timed_out else "connection-failed"
        summary = f"the Web GUI on TCP {origin.port} " + _what_failed(exc, deadline)
        return Finding(Status.FAIL, summary, evidence, _REACH_ADVICE.format(port=origin.port))


def _login_answered(
    session: DeadlineSession,
    origin: _Origin,
    gui: GuiSettings,
    settings: GuiLogin,
    deadline: Deadline,
    evidence: dict[str, Any],
    page: _Page,
) -> Finding:
    """The login itself, once the GUI has answered: HTTP authentication if it asks, then the form if there is one."""
    username = gui.username or ""
    password = gui.password.get_secret_value() if gui.password else ""
    evidence["login_page_status"] = page.status
    evidence["login_page_path"] = urlsplit(page.url).path
    if page.redirects:
        evidence["login_page_redirects"] = list(page.redirects)
    if origin.scheme == "https":
        der = session.peer_certificate(origin.ip, origin.port)
        if der is not None:
            evidence["certificate"] = certificate_evidence(der, datetime.now(UTC))
    auth: AuthBase | None = None
    http_auth = ""
    if page.status == 401 and page.www_authenticate:
        challenges = parse_challenges(page.www_authenticate)
        evidence["auth_offered"] = sorted({challenge.scheme for challenge in challenges})
        chosen = http_auth_for(challenges, username, password)
        if chosen is None:
            evidence |= {"outcome": "unsupported-auth", "auth": "none"}
            return Finding(
                Status.FAIL,
                "the Web GUI asks for HTTP authentication preflight cannot answer "
                f"({', '.join(evidence['auth_offered'])})",
                evidence,
                f"Support logs in with a form, HTTP Basic or HTTP Digest: make the Web GUI on TCP {origin.port} "
                "offer one of them.",
            )
        http_auth, auth = chosen
        page = _fetch(session, "GET", page.url, origin, deadline, auth=auth)
        evidence["http_auth_status"] = page.status
    evidence["auth"] = http_auth or "form"
    form = find_login_form(page.body, settings)
    if form is None and http_auth:
        return _finding(_judged(page, page, evidence, session, settings, http_auth), evidence, origin, settings.port)
    if form is None:
        evidence["outcome"] = "no-login-form"
        named = f" with a field named {settings.password_field!r}" if settings.password_field else ""
        return Finding(
            Status.FAIL,
            f"no login form{named} found at {urlsplit(page.url).path} (HTTP {page.status})",
            evidence,
            f"TCP {origin.port} must reach the system's Web GUI login page. Check that the port is forwarded to the "
            "system itself and not to another web server.",
        )
    if http_auth:
        evidence["auth"] = f"{http_auth}+form"
    user_field, secret_field = username_field(form, settings), password_field(form, settings)
    action = urljoin(page.url, form.action or page.url)
    evidence |= {
        "form_action": urlsplit(action).path,
        "form_method": form.method,
        "username_field": user_field,
        "password_field": secret_field,
        "hidden_fields": form.hidden_fields(),
    }
    if form.method != "post":
        evidence["outcome"] = "get-login-form"
        return Finding(
            Status.FAIL,
            "the login form would send the password in the URL (method GET); it was not submitted",
            evidence,
            f"TCP {origin.port} must reach the system's own Web GUI, whose login form posts the password. Check that "
            "the port is forwarded to the system itself and not to another web server.",
        )
    data = form.carried_fields()
    if user_field:
        data[user_field] = username
    data[secret_field] = password
    cookies_before = session.cookies.get_dict()
    result = _fetch(session, "POST", action, origin, deadline, data, auth=auth)
    evidence["cookies_set_by_login"] = sorted(
        name for name, value in session.cookies.get_dict().items() if cookies_before.get(name) != value
    )
    return _finding(_judged(page, result, evidence, session, settings, ""), evidence, origin, settings.port)


def _judged(
    login_page: _Page,
    result: _Page,
    evidence: dict[str, Any],
    session: DeadlineSession,
    settings: GuiLogin,
    http_auth: str,
) -> Verdict:
    login_path = urlsplit(login_page.url).path
    after_path = urlsplit(result.url).path
    evidence["after_login_status"] = result.status
    evidence["after_login_path"] = after_path
    evidence["redirects"] = list(result.redirects)
    evidence["cookies"] = sorted(session.cookies.keys())
    verdict = judge_login(
        result.status,
        result.body,
        redirected_away=bool(result.redirects) and after_path != login_path,
        has_cookies=bool(evidence["cookies"]),
        settings=settings,
        http_auth=http_auth,
    )
    evidence["decided_by"] = verdict.because
    return verdict


def _finding(verdict: Verdict, evidence: dict[str, Any], origin: _Origin, https_port: int) -> Finding:
    plain = origin.scheme == "http"
    kind = _auth_words(evidence.get("auth", "form"))
    port = origin.port
    if verdict.outcome == "logged-in":
        if plain:
            evidence["outcome"] = "plain-http"
            return Finding(
                Status.WARN,
                f"the GUI login works on TCP {port} ({kind}), but over plain HTTP: the password crosses the internet "
                "in clear",
                evidence,
                _PLAIN_HTTP_ADVICE.format(https_port=https_port),
            )
        evidence["outcome"] = "logged-in"
        certificate = evidence.get("certificate", {})
        note = "; self-signed certificate" if certificate.get("self_signed") else ""
        return Finding(Status.PASS, f"Web GUI login works on TCP {port} ({kind}{note})", evidence)
    evidence["outcome"] = verdict.outcome
    if verdict.outcome == "second-factor":
        evidence["second_factor_prompt"] = verdict.because
        over = ", over plain HTTP" if plain else ""
        return Finding(
            Status.WARN,
            f"credentials accepted; the account requires a second factor (TCP {port}{over})",
            evidence,
            _SECOND_FACTOR_ADVICE.format(port=port),
        )
    if verdict.outcome == "wrong-credentials":
        reasons = {
            "form-returned": "the login form came back",
            "asked-again": f"the server asked for the password again (HTTP 401, {kind})",
            "failure-marker": "the page says the login failed",
        }
        reason = reasons.get(verdict.because, f"HTTP {evidence.get('after_login_status')} with the login form")
        return Finding(
            Status.FAIL,
            f"Web GUI login refused: {reason} (wrong username or password)",
            evidence,
            _CHECK_CREDENTIALS.format(port=port, url=origin.address_url),
        )
    if verdict.outcome in ("refused", "server-error"):
        status = evidence.get("after_login_status")
        summary = (
            f"Web GUI login refused with HTTP {status}"
            if verdict.outcome == "refused"
            else f"the Web GUI failed with HTTP {status} after the credentials were sent"
        )
        advice = (
            _CHECK_CREDENTIALS.format(port=port, url=origin.address_url)
            if verdict.outcome == "refused"
            else (
                f"The Web GUI on TCP {port} answered with a server error: check that the system's web services are "
                "running, then log in once by hand."
            )
        )
        return Finding(Status.FAIL, summary, evidence, advice)
    return Finding(
        Status.WARN,
        f"the login on TCP {port} was answered, but nothing shows a session: no redirect, no cookie, no login form "
        "again",
        evidence,
        "Log in to the Web GUI once by hand with the inventory's username and password to confirm they work.",
    )


def _auth_words(auth: str) -> str:
    return {
        "form": "form login",
        "basic": "HTTP Basic authentication",
        "digest": "HTTP Digest authentication",
        "basic+form": "HTTP Basic authentication, then form login",
        "digest+form": "HTTP Digest authentication, then form login",
    }.get(auth, auth)


def _off_origin(exc: _OffOrigin, evidence: dict[str, Any], port: int) -> Finding:
    evidence["outcome"] = "off-origin"
    evidence["refused_target"] = exc.where
    if exc.reason == "another host":
        summary = f"the Web GUI points to another host ({exc.where}); nothing was sent there"
    else:
        summary = f"the Web GUI points to {exc.where} ({exc.reason}); nothing was sent there"
    return Finding(Status.FAIL, summary, evidence, _REACH_ADVICE.format(port=port))


def _nothing_answered(
    port: int, failures: list[_NoAnswer], evidence: dict[str, Any], allow_plain_http: bool, profile: Profile
) -> Finding:
    evidence |= {"not_answered": [_failure_text(failure) for failure in failures], "port": port}
    first = failures[0]
    if len(failures) == 1:
        evidence |= {"scheme": first.endpoint.scheme, "outcome": "timeout" if first.timed_out else "no-answer"}
        summary = f"the Web GUI on TCP {port} " + ("did not answer in time" if first.timed_out else first.what)
        if first.endpoint.scheme == "https" and not allow_plain_http and profile.ports_for("http"):
            evidence["outcome"] = "https-unavailable"
            return Finding(
                Status.FAIL,
                f"{summary} over HTTPS; plain HTTP was not tried, because it would send the password in clear",
                evidence,
                _HTTPS_ADVICE.format(port=port),
            )
        return Finding(Status.FAIL, summary, evidence, _REACH_ADVICE.format(port=port))
    evidence["outcome"] = "no-answer"
    tried = "; ".join(_failure_text(failure) for failure in failures)
    return Finding(
        Status.FAIL,
        f"the Web GUI answered on none of its ports: {tried}",
        evidence,
        _REACH_ADVICE.format(port=port),
    )


def _failure_text(failure: _NoAnswer) -> str:
    what = "did not answer in time" if failure.timed_out else failure.what
    return f"{failure.endpoint.scheme} {failure.endpoint.port}: {what}"


def _timed_out(exc: BaseException, deadline: Deadline) -> bool:
    return deadline.expired or any(
        isinstance(cause, (requests.Timeout, TimeoutError)) for cause in exception_causes(exc)
    )


def _what_failed(exc: BaseException, deadline: Deadline) -> str:
    """A short description of a connection failure, from its type alone: library messages may quote URLs."""
    if _timed_out(exc, deadline):
        return "did not answer in time"
    for cause in exception_causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "refused the connection"
        if isinstance(cause, ConnectionResetError):
            return "reset the connection"
        if isinstance(cause, requests.exceptions.SSLError | urllib3.exceptions.SSLError) or type(
            cause
        ).__name__.startswith("SSL"):
            return "failed the TLS handshake"
        if isinstance(cause, requests.TooManyRedirects):
            return f"redirected more than {_MAX_REDIRECTS} times"
    return f"failed: {type(exc).__name__}"
