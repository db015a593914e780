"""The one login engine behind gui-login and setup-wizard-login: a web login, judged by evidence.

A check describes its login with a LoginSpec (what it logs in to, the credentials, the endpoints to try in order,
and how to read the page: the profile's LoginPage settings); the engine does the rest. The page may ask for HTTP
Basic or Digest authentication, show a login form, or both. Every URL is pinned to the page's own origin before
anything is sent, each attempt submits the form once, and the password goes only to the field identified as the
password field. The outcome is decided by evidence, never by the absence of an error.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from pydantic import SecretStr
from requests.auth import AuthBase

from preflight.deadline import Deadline
from preflight.model import Finding, Status
from preflight.profiles import LoginPage
from preflight.web.certificate_evidence import certificate_evidence
from preflight.web.html_forms import (
    MAX_FORMS,
    ParsedPage,
    find_login_form,
    meta_csrf_fields,
    parse_page,
    password_field,
    second_factor_prompt,
    username_field,
)
from preflight.web.http_auth import http_auth_for, parse_challenges
from preflight.web.http_client import DeadlineSession, deadline_session, exception_causes

# What is read of a page, decoded: a login page is far smaller; a bigger body is cut here, and the evidence says so.
_BODY_LIMIT = 1 << 20
# Asked of urllib3 at a time: it reads as many bytes off the wire as asked, so a compressed body read in one piece
# would wait for a megabyte of compressed data (a gigabyte of a gzip bomb) to expand only the first megabyte of it.
_READ_PIECE = 64 * 1024
_MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    port: int
    # False: only see whether the page answers; a login there would send the password in clear without consent.
    send_credentials: bool = True


@dataclass(frozen=True, slots=True)
class LoginSpec:
    """One check's login: what it is called, with what, where, and how its page is read."""

    what: str  # "Web GUI", "Setup Wizard": how summaries and fixes name it
    username: str
    password: SecretStr
    settings: LoginPage
    endpoints: tuple[Endpoint, ...]
    allow_plain_http: bool
    credential_noun: str = "password"  # "root password"
    credential_keys: str = "gui.username and gui.password"  # where the inventory holds the credentials
    plain_http_key: str = "gui.allow_plain_http"
    # Plain-HTTP endpoints exist but were left out for want of the opt-in: say so when HTTPS does not answer.
    plain_http_left_out: bool = False


# --- reading pages ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str  # logged-in, second-factor, wrong-credentials, refused, server-error, unconfirmed
    because: str  # the evidence: redirect, session-cookie, success-marker, http-auth-accepted, form-returned, ...


def judge_login(
    status: int,
    body: str | ParsedPage,
    *,
    redirected_away: bool,
    has_cookies: bool,
    settings: LoginPage,
    http_auth: str = "",
) -> Verdict:
    """Decide from what came back after the credentials were sent whether the login worked."""
    page = body if isinstance(body, ParsedPage) else parse_page(body)
    if settings.failure_marker and settings.failure_marker in page.text:
        return Verdict("wrong-credentials", "failure-marker")
    if http_auth and status == 401:
        return Verdict("wrong-credentials", "asked-again")
    login_form_back = find_login_form(page, settings) is not None
    if status >= 500:
        return Verdict("server-error", f"http-{status}")
    if status >= 400:
        return Verdict("wrong-credentials" if login_form_back else "refused", f"http-{status}")
    second_factor = second_factor_prompt(page, settings.second_factor_marker)
    if second_factor is not None:
        return Verdict("second-factor", second_factor)
    if settings.success_marker and settings.success_marker in page.text:
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


@dataclass(frozen=True)
class _Page:
    url: str
    status: int
    body: ParsedPage
    redirects: tuple[str, ...]
    www_authenticate: tuple[str, ...] = ()
    truncated: bool = False  # longer than _BODY_LIMIT: only the start was read


class _BadBody(Exception):
    """The server sent a status line and headers, then a body that could not be read: too slow, or cut short."""

    def __init__(self, status: int, what: str, outcome: str) -> None:
        super().__init__(what)
        self.status = status
        self.what = what
        self.outcome = outcome


class _OffOrigin(Exception):
    """A redirect or form action that leaves the page's own scheme, host and port."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where)
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class _Origin:
    """The page's scheme, port and names (its address and resolved IP); requests always go to the IP."""

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
        """`url` aimed at the page's IP, or _OffOrigin if it points anywhere else; nothing is sent before this."""
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


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


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
        if isinstance(session, DeadlineSession):
            # Not only each wait but the whole response ends within `timeout`: a server that drips its answer
            # must not take the time a fallback endpoint was left.
            session.limit_reads(Deadline(timeout))
        with session.request(
            method, url, data=data, auth=auth, allow_redirects=False, stream=True, timeout=timeout
        ) as response:
            raw, truncated = _read_body(response, deadline)
            location = response.headers.get("Location")
            if not (response.is_redirect and location):
                body = parse_page(raw.decode(response.encoding or "utf-8", errors="replace"), deadline)
                challenges = tuple(response.raw.headers.getlist("WWW-Authenticate"))
                return _Page(url, response.status_code, body, tuple(redirects), challenges, truncated)
        url = urljoin(url, location)
        redirects.append(urlsplit(url).path)
        if response.status_code not in (307, 308):
            method, data = "GET", None
    raise requests.TooManyRedirects(f"more than {_MAX_REDIRECTS} redirects")


def _read_body(response: requests.Response, deadline: Deadline) -> tuple[bytes, bool]:
    """The body, decoded, up to _BODY_LIMIT bytes, and whether there was more; _BadBody if it cannot be read."""
    pieces: list[bytes] = []
    size = 0
    started = deadline.remaining()
    try:
        while size < _BODY_LIMIT:
            piece = response.raw.read(min(_READ_PIECE, _BODY_LIMIT - size), decode_content=True)
            if not piece:
                return b"".join(pieces), False
            pieces.append(piece)
            size += len(piece)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        status = response.status_code
        if _timed_out(exc, deadline):
            waited = started - deadline.remaining()
            raise _BadBody(
                status,
                f"did not answer in time: HTTP {status} came, but not the page within {waited:.1f} s",
                "page-too-slow",
            ) from None
        announced = response.headers.get("Content-Length", "")
        if any(isinstance(cause, http.client.IncompleteRead) for cause in exception_causes(exc)) and announced:
            raise _BadBody(
                status,
                f"answered HTTP {status} but ended its page early ({response.raw.tell()} of the {announced[:20]} "
                "bytes its Content-Length announced)",
                "page-cut-short",
            ) from None
        raise _BadBody(
            status, f"answered HTTP {status} but broke off its page ({_what_failed(exc, deadline)})", "page-broken"
        ) from None
    return b"".join(pieces), True


# --- the login ----------------------------------------------------------------------------------------------------


class _NoAnswer(Exception):
    """The endpoint gave no HTTP answer at all (refused, reset, TLS failure, silence): another may be tried."""

    def __init__(self, endpoint: Endpoint, what: str, timed_out: bool) -> None:
        super().__init__(what)
        self.endpoint = endpoint
        self.what = what
        self.timed_out = timed_out


def log_in(spec: LoginSpec, ip: str, address: str, deadline: Deadline, evidence: dict[str, Any]) -> Finding:
    """Try the spec's endpoints in order until one answers HTTP, and log in there (or only look, where the
    endpoint may not be sent the credentials)."""
    names = frozenset({ip, address.lower().rstrip(".")})
    failures: list[_NoAnswer] = []
    with deadline_session(deadline) as session:
        for index, endpoint in enumerate(spec.endpoints):
            fallbacks_left = len(spec.endpoints) - index - 1
            origin = _Origin(endpoint.scheme, ip, endpoint.port, names, address)
            attempt = {**evidence, "scheme": endpoint.scheme, "port": endpoint.port, "url": origin.base}
            if failures:
                attempt["not_answered"] = [_failure_text(failure) for failure in failures]
            try:
                return _Login(spec, session, origin, endpoint, deadline, attempt).run(fallbacks_left)
            except _NoAnswer as failure:
                failures.append(failure)
                if deadline.expired:
                    break
    return _nothing_answered(spec, failures, evidence)


class _Login:
    """One endpoint's login: fetch the page, answer HTTP authentication, submit the form once, judge the result."""

    def __init__(
        self,
        spec: LoginSpec,
        session: DeadlineSession,
        origin: _Origin,
        endpoint: Endpoint,
        deadline: Deadline,
        evidence: dict[str, Any],
    ) -> None:
        self.spec = spec
        self.settings = spec.settings
        self.session = session
        self.origin = origin
        self.endpoint = endpoint
        self.deadline = deadline
        self.evidence = evidence

    def run(self, fallbacks_left: int) -> Finding:
        evidence, origin = self.evidence, self.origin
        evidence["url"] = origin.base + self.settings.path
        # The first request gets a share of the time, so that a silent HTTPS port leaves time to try plain HTTP.
        budget = self.deadline.remaining() / (fallbacks_left + 1) if fallbacks_left else None
        page: _Page | None = None
        try:
            page = _fetch(self.session, "GET", evidence["url"], origin, self.deadline, budget=budget)
            if not self.endpoint.send_credentials:
                return self._looked_only(page)
            return self._answered(page)
        except _OffOrigin as exc:
            return self._off_origin(exc)
        except _BadBody as exc:
            if page is not None:
                self._record_page(page)
            evidence |= {"outcome": exc.outcome, "http_status": exc.status}
            summary = f"the {self.spec.what} on TCP {origin.port} {exc.what}"
            return Finding(Status.FAIL, summary, evidence, self._reach_advice())
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            timed_out = _timed_out(exc, self.deadline)
            if page is None and not isinstance(exc, requests.TooManyRedirects):
                raise _NoAnswer(self.endpoint, _what_failed(exc, self.deadline), timed_out) from None
            if isinstance(exc, requests.TooManyRedirects):
                evidence["outcome"] = "too-many-redirects"
            else:
                evidence["outcome"] = "timeout" if timed_out else "connection-failed"
            summary = f"the {self.spec.what} on TCP {origin.port} " + _what_failed(exc, self.deadline)
            return Finding(Status.FAIL, summary, evidence, self._reach_advice())

    def _record_page(self, page: _Page) -> None:
        self.evidence["login_page_status"] = page.status
        self.evidence["login_page_path"] = urlsplit(page.url).path
        if page.truncated:
            self.evidence["login_page_truncated_at_bytes"] = _BODY_LIMIT
        if page.redirects:
            self.evidence["login_page_redirects"] = list(page.redirects)
        if self.origin.scheme == "https":
            der = self.session.peer_certificate(self.origin.ip, self.origin.port)
            if der is not None:
                self.evidence["certificate"] = certificate_evidence(der, datetime.now(UTC))

    def _looked_only(self, page: _Page) -> Finding:
        """The page answered over plain HTTP, where the credentials may not go without the host's consent."""
        spec, port = self.spec, self.origin.port
        self._record_page(page)
        self.evidence["login_form_found"] = find_login_form(page.body, self.settings) is not None
        self.evidence["outcome"] = "plain-http-not-sent"
        return Finding(
            Status.WARN,
            f"the {spec.what} answers only plain HTTP; the {spec.credential_noun} was not sent (TCP {port})",
            self.evidence,
            f"Make the {spec.what} on TCP {port} answer over HTTPS, so that support can log in without sending the "
            f"{spec.credential_noun} in clear. Only if support must log in over plain HTTP anyway, set "
            f"{spec.plain_http_key}: true for this host: the {spec.credential_noun} then crosses the internet "
            "unencrypted.",
        )

    def _answered(self, page: _Page) -> Finding:
        """The login itself, once the page has answered: HTTP authentication if it asks, then the form if any."""
        spec, settings, evidence, origin = self.spec, self.settings, self.evidence, self.origin
        username, password = spec.username, spec.password.get_secret_value()
        self._record_page(page)
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
                    f"the {spec.what} asks for HTTP authentication preflight cannot answer "
                    f"({', '.join(evidence['auth_offered'])})",
                    evidence,
                    f"Support logs in with a form, HTTP Basic or HTTP Digest: make the {spec.what} on TCP "
                    f"{origin.port} offer one of them.",
                )
            http_auth, auth = chosen
            page = _fetch(self.session, "GET", page.url, origin, self.deadline, auth=auth)
            evidence["http_auth_status"] = page.status
        evidence["auth"] = http_auth or "form"
        form = find_login_form(page.body, settings)
        if form is None and http_auth:
            return self._finding(self._judged(page, page, http_auth))
        if form is None:
            evidence["outcome"] = "no-login-form"
            named = f" with a field named {settings.password_field!r}" if settings.password_field else ""
            too_many = ""
            if page.body.forms_left_out:
                evidence["forms_left_out"] = page.body.forms_left_out
                too_many = f"; only the first {MAX_FORMS} of its forms were read"
            return Finding(
                Status.FAIL,
                f"no login form{named} found at {urlsplit(page.url).path} (HTTP {page.status}{too_many})",
                evidence,
                f"TCP {origin.port} must reach the system's {spec.what} login page. Check that the port is forwarded "
                "to the system itself and not to another web server.",
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
                f"the login form would send the {spec.credential_noun} in the URL (method GET); it was not submitted",
                evidence,
                f"TCP {origin.port} must reach the system's own {spec.what}, whose login form posts the password. "
                "Check that the port is forwarded to the system itself and not to another web server.",
            )
        data = form.carried_fields()
        # A token a script would copy from a <meta> tag into the form, sent as the field of the same name.
        meta_tokens = {name: value for name, value in meta_csrf_fields(page.body).items() if name not in data}
        if meta_tokens:
            evidence["meta_csrf_fields"] = sorted(meta_tokens)
            data |= meta_tokens
        if user_field:
            data[user_field] = username
        data[secret_field] = password
        cookies_before = self.session.cookies.get_dict()
        result = _fetch(self.session, "POST", action, origin, self.deadline, data, auth=auth)
        evidence["cookies_set_by_login"] = sorted(
            name for name, value in self.session.cookies.get_dict().items() if cookies_before.get(name) != value
        )
        return self._finding(self._judged(page, result, ""))

    def _judged(self, login_page: _Page, result: _Page, http_auth: str) -> Verdict:
        evidence = self.evidence
        evidence["after_login_status"] = result.status
        evidence["after_login_path"] = urlsplit(result.url).path
        evidence["redirects"] = list(result.redirects)
        evidence["cookies"] = sorted(self.session.cookies.keys())
        verdict = judge_login(
            result.status,
            result.body,
            redirected_away=bool(result.redirects) and _path_and_query(result.url) != _path_and_query(login_page.url),
            has_cookies=bool(evidence["cookies"]),
            settings=self.settings,
            http_auth=http_auth,
        )
        evidence["decided_by"] = verdict.because
        return verdict

    def _finding(self, verdict: Verdict) -> Finding:
        finding = self._judged_finding(verdict)
        https_port = self.spec.settings.port
        if finding.status is Status.PASS or self.origin.scheme != "http" or self.origin.port == https_port:
            return finding
        # The login fell back to plain HTTP: the fix must also name the HTTPS port that did not answer.
        advice = _plain_http_advice(self.spec, self.origin.port)
        fallback = (
            f" This login went over plain HTTP on TCP {self.origin.port} because TCP {https_port} did not answer over "
            f"HTTPS: {advice}"
        )
        return replace(finding, remediation=finding.remediation + fallback)

    def _judged_finding(self, verdict: Verdict) -> Finding:
        spec, evidence, origin = self.spec, self.evidence, self.origin
        plain = origin.scheme == "http"
        kind = _auth_words(evidence.get("auth", "form"))
        port, what, secret = origin.port, spec.what, spec.credential_noun
        check_credentials = (
            f"The {what} on TCP {port} refused the login: check {spec.credential_keys} in the inventory, and log in "
            f"once by hand at {origin.address_url} to confirm them."
        )
        if verdict.outcome == "logged-in":
            if plain:
                evidence["outcome"] = "plain-http"
                return Finding(
                    Status.WARN,
                    f"the {what} login works on TCP {port} ({kind}), but over plain HTTP: the {secret} crosses the "
                    "internet in clear",
                    evidence,
                    _plain_http_advice(spec, port),
                )
            evidence["outcome"] = "logged-in"
            certificate = evidence.get("certificate", {})
            note = "; self-signed certificate" if certificate.get("self_signed") else ""
            return Finding(Status.PASS, f"{what} login works on TCP {port} ({kind}{note})", evidence)
        evidence["outcome"] = verdict.outcome
        if verdict.outcome == "second-factor":
            evidence["second_factor_prompt"] = verdict.because
            over = ", over plain HTTP" if plain else ""
            return Finding(
                Status.WARN,
                f"credentials accepted; the account requires a second factor (TCP {port}{over})",
                evidence,
                f"The {what} on TCP {port} asks for a one-time code after the {secret}, and support cannot receive "
                f"your codes: give support a {what} account without a second factor, or arrange to read support the "
                "code when they log in.",
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
                f"{what} login refused: {reason} (wrong username or {secret})",
                evidence,
                check_credentials,
            )
        if verdict.outcome in ("refused", "server-error"):
            status = evidence.get("after_login_status")
            if verdict.outcome == "refused":
                return Finding(Status.FAIL, f"{what} login refused with HTTP {status}", evidence, check_credentials)
            return Finding(
                Status.FAIL,
                f"the {what} failed with HTTP {status} after the credentials were sent",
                evidence,
                f"The {what} on TCP {port} answered with a server error: check that the system's web services are "
                "running, then log in once by hand.",
            )
        return Finding(
            Status.WARN,
            f"the login on TCP {port} was answered, but nothing shows a session: no redirect, no cookie, no login "
            "form again",
            evidence,
            f"Log in to the {what} on TCP {port} once by hand with the inventory's username and {secret} to confirm "
            "they work.",
        )

    def _off_origin(self, exc: _OffOrigin) -> Finding:
        evidence = self.evidence
        evidence["outcome"] = "off-origin"
        evidence["refused_target"] = exc.where
        if exc.reason == "another host":
            summary = f"the {self.spec.what} points to another host ({exc.where}); nothing was sent there"
        else:
            summary = f"the {self.spec.what} points to {exc.where} ({exc.reason}); nothing was sent there"
        return Finding(Status.FAIL, summary, evidence, self._reach_advice())

    def _reach_advice(self) -> str:
        return _reach_advice(self.spec, self.origin.port)


def _plain_http_advice(spec: LoginSpec, port: int) -> str:
    https_port = spec.settings.port
    fix = (
        f"Make the {spec.what} on TCP {port} answer over HTTPS"
        if https_port == port
        else f"Forward TCP {https_port} to the system's {spec.what}"
    )
    return (
        f"{fix} so that support logs in over HTTPS, then remove {spec.plain_http_key} from this host in the inventory."
    )


def _reach_advice(spec: LoginSpec, port: int) -> str:
    return f"Make sure TCP {port} is forwarded to the system's {spec.what} and that it answers over HTTPS."


def _auth_words(auth: str) -> str:
    return {
        "form": "form login",
        "basic": "HTTP Basic authentication",
        "digest": "HTTP Digest authentication",
        "basic+form": "HTTP Basic authentication, then form login",
        "digest+form": "HTTP Digest authentication, then form login",
    }.get(auth, auth)


def _nothing_answered(spec: LoginSpec, failures: list[_NoAnswer], evidence: dict[str, Any]) -> Finding:
    port, what = spec.settings.port, spec.what
    evidence |= {"not_answered": [_failure_text(failure) for failure in failures], "port": port}
    first = failures[0]
    if len(failures) == 1:
        evidence |= {"scheme": first.endpoint.scheme, "outcome": "timeout" if first.timed_out else "no-answer"}
        summary = f"the {what} on TCP {port} " + ("did not answer in time" if first.timed_out else first.what)
        if first.endpoint.scheme == "https" and spec.plain_http_left_out:
            evidence["outcome"] = "https-unavailable"
            return Finding(
                Status.FAIL,
                f"{summary} over HTTPS; plain HTTP was not tried, because it would send the {spec.credential_noun} in "
                "clear",
                evidence,
                f"Forward TCP {port} to the system's {what} and make sure it answers over HTTPS. Only if support must "
                f"log in over plain HTTP instead, set {spec.plain_http_key}: true for this host: the "
                f"{spec.credential_noun} then crosses the internet unencrypted.",
            )
        return Finding(Status.FAIL, summary, evidence, _reach_advice(spec, port))
    evidence["outcome"] = "no-answer"
    tried = "; ".join(_failure_text(failure) for failure in failures)
    ports = sorted({failure.endpoint.port for failure in failures})
    where = "on none of its ports" if len(ports) > 1 else f"on TCP {port}, neither over HTTPS nor over HTTP"
    return Finding(Status.FAIL, f"the {what} answered {where}: {tried}", evidence, _reach_advice(spec, port))


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
        if isinstance(cause, http.client.LineTooLong):
            return "did not answer HTTP (a status or header line longer than 64 KiB)"
        if isinstance(cause, http.client.BadStatusLine):
            return "did not answer HTTP (no HTTP status line)"
        if type(cause) is http.client.HTTPException and str(cause).startswith("got more than"):
            return "did not answer HTTP (more than 100 header lines)"
    return f"failed: {type(exc).__name__}"
