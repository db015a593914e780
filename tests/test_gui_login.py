"""gui-login's parsing and decisions, and the whole probe against stand-in GUIs on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.probes import gui_login
from preflight.probes.gui_login import login_endpoints
from preflight.profiles import GuiLogin, Profile, RequiredPort, load_profiles
from preflight.target import Target
from preflight.web.html_forms import find_login_form, second_factor_prompt, username_field
from preflight.web.http_auth import Challenge, DigestCredentials, http_auth_for, parse_challenges
from preflight.web.login import Endpoint, judge_login

PROFILES = load_profiles()
PBXWARE = PROFILES["pbxware"]
GUI_PASSWORD = "stand-in-gui-secret-7f3a"
DEFAULT_SETTINGS = GuiLogin(port=443)

LOGIN_PAGE = """
<form id="search" method="get" action="/search"><input type="search" name="q"></form>
<form method="post" action="/login">
  <input type="hidden" name="csrf_token" value="t0k3n">
  <input type="text" name="domain" value="default">
  <label>User <input type="text" name="login_user"></label>
  <input type="password" name="secret">
  <input type="checkbox" name="remember" value="1" checked>
  <input type="checkbox" name="tracking" value="1">
  <input type="submit" name="go" value="Log in">
</form>
"""
VERIFY_PAGE = """
<form method="post" action="/verify"><input type="hidden" name="csrf_token" value="x">
<label for="c">Verification code</label><input type="text" id="c" name="c"></form>
"""


# --- parsing ------------------------------------------------------------------------------------------------------


def test_login_form_keeps_hidden_fields_and_defaults_and_finds_the_username() -> None:
    form = find_login_form(LOGIN_PAGE)

    assert form is not None
    assert (form.action, form.method, form.password_fields) == ("/login", "post", ["secret"])
    assert form.carried_fields() == {"csrf_token": "t0k3n", "domain": "default", "login_user": "", "remember": "1"}
    assert form.hidden_fields() == ["csrf_token"]
    assert username_field(form) == "login_user"


def test_profile_named_fields_choose_the_form_and_the_username() -> None:
    page = (
        '<form method="post" action="/a"><input name="u"><input type="password" name="p"></form>'
        '<form method="post" action="/b"><input name="account"><input name="user">'
        '<input type="password" name="pin"></form>'
    )
    settings = GuiLogin(port=443, username_field="account", password_field="pin")

    form = find_login_form(page, settings)

    assert form is not None and form.action == "/b"
    assert username_field(form, settings) == "account"
    assert find_login_form(page, GuiLogin(port=443, password_field="nope")) is None


@pytest.mark.parametrize(
    ("page", "marker", "expected"),
    [
        (VERIFY_PAGE, None, "c"),
        ('<form method="post"><input name="otp_code" inputmode="numeric"></form>', None, "otp_code"),
        ('<form method="post"><input name="x" autocomplete="one-time-code"></form>', None, "x"),
        ('<form method="post"><input name="twoFactorToken"></form>', None, "twoFactorToken"),
        ('<form method="post"><label>Authenticator <input name="v"></label></form>', None, "v"),
        ("<p>Enter the code we sent you</p>", "code we sent", "marker: code we sent"),
        (LOGIN_PAGE, None, None),
        ('<form><input type="search" name="q"></form><p>Dashboard</p>', None, None),
        ('<form method="post"><input type="hidden" name="csrf_token"></form>', None, None),
        ('<form method="post"><input name="username"><input name="code"></form>', None, None),
    ],
    ids=[
        "label-for",
        "otp-name",
        "autocomplete",
        "camel-case",
        "wrapping-label",
        "profile-marker",
        "login-form-again",
        "search-box",
        "hidden-token-only",
        "code-beside-username",
    ],
)
def test_second_factor_prompt_is_a_form_that_asks_only_for_a_code(
    page: str, marker: str | None, expected: str | None
) -> None:
    assert second_factor_prompt(page, marker) == expected


# --- judging ------------------------------------------------------------------------------------------------------

DASHBOARD = "<h1>Dashboard</h1>"


@pytest.mark.parametrize(
    ("status", "body", "redirected", "cookies", "settings", "http_auth", "expected"),
    [
        (200, DASHBOARD, True, True, DEFAULT_SETTINGS, "", ("logged-in", "redirect")),
        (200, DASHBOARD, False, True, DEFAULT_SETTINGS, "", ("logged-in", "session-cookie")),
        (200, DASHBOARD, False, False, DEFAULT_SETTINGS, "", ("unconfirmed", "no-redirect-no-cookie")),
        (
            200,
            "Welcome, admin",
            False,
            False,
            GuiLogin(port=443, success_marker="Welcome,"),
            "",
            ("logged-in", "success-marker"),
        ),
        (200, LOGIN_PAGE, True, True, DEFAULT_SETTINGS, "", ("wrong-credentials", "form-returned")),
        (401, LOGIN_PAGE, False, True, DEFAULT_SETTINGS, "", ("wrong-credentials", "http-401")),
        (
            200,
            "Bad login",
            True,
            True,
            GuiLogin(port=443, failure_marker="Bad login"),
            "",
            ("wrong-credentials", "failure-marker"),
        ),
        (200, VERIFY_PAGE, True, True, DEFAULT_SETTINGS, "", ("second-factor", "c")),
        (403, "Forbidden", False, True, DEFAULT_SETTINGS, "", ("refused", "http-403")),
        (502, "Bad gateway", False, True, DEFAULT_SETTINGS, "", ("server-error", "http-502")),
        (200, DASHBOARD, False, False, DEFAULT_SETTINGS, "basic", ("logged-in", "http-auth-accepted")),
        (401, "", False, False, DEFAULT_SETTINGS, "digest", ("wrong-credentials", "asked-again")),
        (200, VERIFY_PAGE, False, False, DEFAULT_SETTINGS, "basic", ("second-factor", "c")),
    ],
    ids=[
        "redirect-away",
        "cookie-and-form-gone",
        "no-evidence",
        "success-marker",
        "form-back",
        "401-with-form",
        "failure-marker",
        "second-factor",
        "forbidden",
        "server-error",
        "http-auth-accepted",
        "http-auth-asked-again",
        "http-auth-then-second-factor",
    ],
)
def test_login_is_judged_by_evidence(
    status: int,
    body: str,
    redirected: bool,
    cookies: bool,
    settings: GuiLogin,
    http_auth: str,
    expected: tuple[str, str],
) -> None:
    verdict = judge_login(
        status, body, redirected_away=redirected, has_cookies=cookies, settings=settings, http_auth=http_auth
    )

    assert (verdict.outcome, verdict.because) == expected


# --- HTTP authentication ------------------------------------------------------------------------------------------

# RFC 7616 section 3.9.1: the worked example, for both algorithms.
RFC_CHALLENGE = {
    "realm": "http-auth@example.org",
    "qop": "auth, auth-int",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
}
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_answer_matches_rfc_7616_example(algorithm: str, response: str) -> None:
    credentials = DigestCredentials("Mufasa", "Circle of Life", {**RFC_CHALLENGE, "algorithm": algorithm}, RFC_CNONCE)

    header = credentials.header("GET", "/dir/index.html")

    assert f'response="{response}"' in header
    assert "qop=auth, nc=00000001" in header
    assert f'opaque="{RFC_CHALLENGE["opaque"]}"' in header
    assert "Circle of Life" not in header


def test_challenges_are_parsed_one_per_header_with_quoted_commas() -> None:
    challenges = parse_challenges(('Digest realm="a, b", qop="auth", nonce="n1"', 'Basic realm="GUI"'))

    assert challenges == [
        Challenge("digest", {"realm": "a, b", "qop": "auth", "nonce": "n1"}),
        Challenge("basic", {"realm": "GUI"}),
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (('Basic realm="x"', 'Digest realm="x", qop="auth", nonce="n"'), "digest"),
        (('Basic realm="x"',), "basic"),
        (('Digest realm="x", qop="auth-int", nonce="n"', 'Basic realm="x"'), "basic"),
        (('Digest realm="x", nonce="n", algorithm=SHA-512-256',), None),
        (("Negotiate", 'Bearer realm="x"'), None),
    ],
    ids=["digest-preferred", "basic", "auth-int-only", "unknown-algorithm", "negotiate-bearer"],
)
def test_http_auth_picks_the_strongest_scheme_preflight_speaks(headers: tuple[str, ...], expected: str | None) -> None:
    chosen = http_auth_for(parse_challenges(headers), "admin", GUI_PASSWORD)

    assert (chosen[0] if chosen else None) == expected


# --- where the login goes -----------------------------------------------------------------------------------------


def _host(**gui: Any) -> Host:
    return Host.model_validate(
        {"name": "stand-in", "product": "pbxware", "address": "127.0.0.1", "gui": {"username": "admin", **gui}},
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )


def test_plain_http_ports_are_tried_only_with_the_opt_in() -> None:
    assert login_endpoints(PBXWARE, 443, allow_plain_http=False) == [Endpoint("https", 443)]
    assert login_endpoints(PBXWARE, 443, allow_plain_http=True) == [
        Endpoint("https", 443),
        Endpoint("http", 80),
    ]
    assert login_endpoints(PBXWARE, 80, allow_plain_http=False) == []


def test_login_waits_for_the_https_check_unless_plain_http_may_be_the_fallback() -> None:
    assert [target.needs for target in gui_login.plan(_host(), PBXWARE)] == ["service/443"]
    assert [target.needs for target in gui_login.plan(_host(allow_plain_http=True), PBXWARE)] == [None]


# --- the probe against stand-in GUIs ------------------------------------------------------------------------------


@dataclass
class Seen:
    """What a stand-in GUI received: request lines, Authorization headers and bodies."""

    lines: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)


Respond = Callable[[BaseHTTPRequestHandler, Seen], tuple[int, dict[str, str], str]]


@contextlib.contextmanager
def stand_in_gui(respond: Respond, address: str = "127.0.0.1") -> Iterator[tuple[int, Seen]]:
    """A plain-HTTP GUI on loopback whose every answer comes from `respond`; yields its port and what it saw."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            seen.lines.append(self.requestline)
            seen.authorizations.append(self.headers.get("Authorization", ""))
            length = int(self.headers.get("Content-Length", "0") or 0)
            seen.bodies.append(self.rfile.read(length).decode() if length else "")
            status, headers, body = respond(self, seen)
            data = body.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer((address, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _plain_http_target(port: int, allow_plain_http: bool = True, settings: GuiLogin | None = None) -> Target:
    """A gui-login target for a stand-in on `port`, which its profile declares as the (plain HTTP) GUI port."""
    profile: Profile = PBXWARE.model_copy(
        update={
            "ports": (RequiredPort(port=port, service="http", purpose="Web GUI (HTTP)"),),
            "gui_login": settings or GuiLogin(port=port),
        }
    )
    host = _host(password=GUI_PASSWORD, allow_plain_http=allow_plain_http)
    return Target(f"gui-login/{port}", "r", host, profile, port=port, ip="127.0.0.1", addresses=("127.0.0.1",))


def _run(target: Target) -> Finding:
    finding = gui_login.run(target, Deadline(5))
    assert GUI_PASSWORD not in repr(finding)
    return finding


def _basic_gui(handler: BaseHTTPRequestHandler, seen: Seen) -> tuple[int, dict[str, str], str]:
    expected = "Basic " + base64.b64encode(f"admin:{GUI_PASSWORD}".encode()).decode()
    if handler.headers.get("Authorization") == expected:
        return 200, {}, DASHBOARD
    return 401, {"WWW-Authenticate": 'Basic realm="GUI"'}, "login required"


def test_basic_login_over_plain_http_warns_and_sends_the_password_only_in_the_header() -> None:
    with stand_in_gui(_basic_gui) as (port, seen):
        finding = _run(_plain_http_target(port))

    assert (finding.status, finding.evidence["outcome"], finding.evidence["auth"]) == (
        Status.WARN,
        "plain-http",
        "basic",
    )
    assert "over plain HTTP: the password crosses the internet in clear" in finding.summary
    assert seen.authorizations[0] == ""
    assert all(GUI_PASSWORD not in line for line in seen.lines)


def test_plain_http_gui_without_the_opt_in_gets_no_request() -> None:
    with stand_in_gui(_basic_gui) as (port, seen):
        finding = _run(_plain_http_target(port, allow_plain_http=False))

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "plain-http-not-allowed")
    assert "allow_plain_http" in finding.remediation
    assert seen.lines == []


def test_credentials_are_not_carried_by_a_redirect_to_another_host_after_http_auth() -> None:
    with stand_in_gui(_basic_gui, "127.0.0.2") as (elsewhere, elsewhere_seen):

        def redirect_after_auth(handler: BaseHTTPRequestHandler, seen: Seen) -> tuple[int, dict[str, str], str]:
            if handler.headers.get("Authorization"):
                return 302, {"Location": f"http://127.0.0.2:{elsewhere}/"}, ""
            return 401, {"WWW-Authenticate": 'Basic realm="GUI"'}, ""

        with stand_in_gui(redirect_after_auth) as (port, _):
            finding = _run(_plain_http_target(port))

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "off-origin")
    assert f"points to another host (127.0.0.2:{elsewhere})" in finding.summary
    assert elsewhere_seen.lines == []


def test_form_login_posts_the_password_in_the_body_with_the_csrf_token() -> None:
    def form_gui(handler: BaseHTTPRequestHandler, seen: Seen) -> tuple[int, dict[str, str], str]:
        if handler.command == "POST":
            return 302, {"Location": "/home", "Set-Cookie": "sid=after; Path=/"}, ""
        if handler.path == "/home":
            return 200, {}, DASHBOARD
        return 200, {"Set-Cookie": "sid=before; Path=/"}, LOGIN_PAGE

    with stand_in_gui(form_gui) as (port, seen):
        finding = _run(_plain_http_target(port))

    assert finding.status is Status.WARN
    evidence = finding.evidence
    assert (evidence["decided_by"], evidence["after_login_path"], evidence["cookies_set_by_login"]) == (
        "redirect",
        "/home",
        ["sid"],
    )
    assert seen.lines[1] == "POST /login HTTP/1.1"
    assert "csrf_token=t0k3n" in seen.bodies[1]
    assert f"secret={GUI_PASSWORD}" in seen.bodies[1]
    assert "go=" not in seen.bodies[1]
    assert all(GUI_PASSWORD not in line for line in seen.lines)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (None, (Status.WARN, "unconfirmed")),
        (GuiLogin(port=1, success_marker="Signed in as"), (Status.WARN, "plain-http")),
    ],
    ids=["no-evidence-warns", "success-marker"],
)
def test_a_login_without_redirect_or_cookie_needs_the_profiles_success_marker(
    settings: GuiLogin | None, expected: tuple[Status, str]
) -> None:
    def same_page(handler: BaseHTTPRequestHandler, seen: Seen) -> tuple[int, dict[str, str], str]:
        if handler.command == "POST":
            return 200, {}, "<p>Signed in as admin</p>"
        return 200, {}, '<form method="post"><input name="user"><input type="password" name="pw"></form>'

    with stand_in_gui(same_page) as (port, _):
        target = _plain_http_target(port)
        if settings is not None:
            gui = settings.model_copy(update={"port": port})
            target = replace(target, profile=target.profile.model_copy(update={"gui_login": gui}))
        finding = _run(target)

    assert (finding.status, finding.evidence["outcome"]) == expected
    assert finding.remediation


def test_a_get_login_form_is_never_submitted() -> None:
    def get_form(handler: BaseHTTPRequestHandler, seen: Seen) -> tuple[int, dict[str, str], str]:
        return 200, {}, '<form action="/in"><input name="user"><input type="password" name="pw"></form>'

    with stand_in_gui(get_form) as (port, seen):
        finding = _run(_plain_http_target(port))

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "get-login-form")
    assert len(seen.lines) == 1


def _https_and_http_profile(http_port: int, https_port: int) -> Profile:
    """A profile whose GUI login is HTTPS on `https_port`, with `http_port` as its plain-HTTP GUI port."""
    return PBXWARE.model_copy(
        update={
            "ports": (
                RequiredPort(port=http_port, service="http", purpose="Web GUI (HTTP)"),
                RequiredPort(port=https_port, service="https", purpose="Web GUI (HTTPS)"),
            ),
            "gui_login": GuiLogin(port=https_port),
        }
    )


def test_https_that_refuses_falls_back_to_plain_http_only_with_the_opt_in() -> None:
    with socket.socket() as closed, stand_in_gui(_basic_gui) as (http_port, _):
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
        https_port = closed.getsockname()[1]
        profile = _https_and_http_profile(http_port, https_port)

        def target(allow: bool) -> Target:
            host = _host(password=GUI_PASSWORD, allow_plain_http=allow)
            return Target("gui-login/x", "r", host, profile, port=https_port, ip="127.0.0.1", addresses=("127.0.0.1",))

        strict, opted_in = _run(target(False)), _run(target(True))

    assert (strict.status, strict.evidence["outcome"]) == (Status.FAIL, "https-unavailable")
    assert "plain HTTP was not tried" in strict.summary
    assert (opted_in.status, opted_in.evidence["outcome"], opted_in.evidence["port"]) == (
        Status.WARN,
        "plain-http",
        http_port,
    )
    assert opted_in.evidence["not_answered"] == [f"https {https_port}: refused the connection"]
    assert f"Forward TCP {https_port}" in opted_in.remediation


def _refusing_basic_gui(handler: BaseHTTPRequestHandler, seen: Seen) -> tuple[int, dict[str, str], str]:
    return 401, {"WWW-Authenticate": 'Basic realm="GUI"'}, "login required"


def test_a_refused_login_after_falling_back_to_plain_http_names_the_https_port_in_its_fix() -> None:
    with socket.socket() as closed, stand_in_gui(_refusing_basic_gui) as (http_port, _):
        closed.bind(("127.0.0.1", 0))  # bound, never listening: HTTPS on it is refused
        https_port = closed.getsockname()[1]
        profile = _https_and_http_profile(http_port, https_port)
        host = _host(password=GUI_PASSWORD, allow_plain_http=True)
        fell_back = _run(Target("gui-login/x", "r", host, profile, port=https_port, ip="127.0.0.1",
                                addresses=("127.0.0.1",)))  # fmt: skip
        # Control: the profile's GUI port is itself plain HTTP, so there was no fallback to explain.
        direct = _run(_plain_http_target(http_port, settings=GuiLogin(port=http_port)))

    assert (fell_back.status, fell_back.evidence["outcome"], fell_back.evidence["port"]) == (
        Status.FAIL,
        "wrong-credentials",
        http_port,
    )
    assert f"TCP {http_port} refused the login" in fell_back.remediation
    assert f"because TCP {https_port} did not answer over HTTPS" in fell_back.remediation
    assert f"Forward TCP {https_port}" in fell_back.remediation
    assert (direct.status, direct.evidence["outcome"]) == (Status.FAIL, "wrong-credentials")
    assert "did not answer over HTTPS" not in direct.remediation
