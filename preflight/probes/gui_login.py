"""gui-login/<port>: support must be able to log in to the Web GUI with the credentials you provide."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from preflight.deadline import Deadline
from preflight.http_client import deadline_session
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target

REQUIREMENT = "Support logs in to the Web GUI on TCP {port} with the GUI username and password you provide."
_BODY_LIMIT = 1 << 20
_MAX_REDIRECTS = 5
_USERNAME_HINTS = ("user", "login", "email", "name")


def plan(host: Host, profile: Profile) -> list[Target]:
    port = profile.gui_login.port
    return [
        Target(
            check_id=f"gui-login/{port}",
            requirement=REQUIREMENT.format(port=port),
            host=host,
            profile=profile,
            port=port,
            needs=f"service/{port}",
        )
    ]


@dataclass
class LoginForm:
    action: str = ""
    method: str = "get"
    fields: dict[str, str] = field(default_factory=dict)
    text_fields: list[str] = field(default_factory=list)
    password_fields: list[str] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[LoginForm] = []
        self._current: LoginForm | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = LoginForm(
                action=attributes.get("action", ""), method=attributes.get("method", "get").lower()
            )
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attributes.get("name"):
            name, kind = attributes["name"], attributes.get("type", "text").lower()
            if kind == "password":
                self._current.password_fields.append(name)
            elif kind in ("text", "email"):
                self._current.text_fields.append(name)
            elif kind not in ("submit", "button", "image", "reset", "checkbox", "radio", "file"):
                self._current.fields[name] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def find_login_form(html: str) -> LoginForm | None:
    """The first form on the page that has a password field."""
    parser = _FormParser()
    parser.feed(html)
    return next((form for form in parser.forms if form.password_fields), None)


def username_field(form: LoginForm) -> str | None:
    hinted = [name for name in form.text_fields if any(hint in name.lower() for hint in _USERNAME_HINTS)]
    candidates = hinted or form.text_fields
    return candidates[0] if candidates else None


@dataclass(frozen=True)
class _Page:
    url: str
    status: int
    body: str
    redirects: tuple[str, ...]


class _OffHost(Exception):
    pass


def run(target: Target, deadline: Deadline) -> Finding:
    ip, port = target.endpoint()
    gui = target.host.gui
    if not gui.username or gui.password is None:
        return Finding(
            Status.FAIL,
            "Web GUI username and password not provided",
            {"port": port},
            "Support needs the Web GUI login: add gui.username and gui.password to this host in the inventory.",
        )
    required = target.profile.port(port)
    scheme = "https" if required is None or required.service == "https" else "http"
    origin = _Origin(scheme, ip, port, frozenset({ip, target.host.address.lower().rstrip(".")}))
    evidence: dict[str, Any] = {"url": origin.base + target.profile.gui_login.path}
    with deadline_session(deadline) as session:
        try:
            page = _fetch(session, "GET", evidence["url"], origin, deadline)
            evidence["login_page_status"] = page.status
            form = find_login_form(page.body)
            if form is None:
                return Finding(
                    Status.FAIL,
                    f"no login form found at {urlsplit(page.url).path} (HTTP {page.status})",
                    evidence,
                    f"TCP {port} must reach the system's Web GUI login page. Check that the port is forwarded to the "
                    "system itself and not to another web server.",
                )
            user_field = username_field(form)
            data = dict(form.fields)
            if user_field:
                data[user_field] = gui.username
            data[form.password_fields[0]] = gui.password.get_secret_value()
            action = urljoin(page.url, form.action or page.url)
            evidence["form_action"] = urlsplit(action).path
            method = "POST" if form.method == "post" else "GET"
            result = _fetch(session, method, action, origin, deadline, data)
        except _OffHost as exc:
            return Finding(
                Status.FAIL,
                f"the Web GUI points to another host ({exc}); nothing was sent there",
                evidence,
                _REACH_ADVICE.format(port=port),
            )
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if deadline.expired or isinstance(exc, requests.Timeout):
                summary = f"the Web GUI on TCP {port} did not answer in time"
            else:
                summary = f"the Web GUI on TCP {port} failed: {type(exc).__name__}"
            return Finding(Status.FAIL, summary, evidence, _REACH_ADVICE.format(port=port))
        evidence["after_login_status"] = result.status
        evidence["after_login_path"] = urlsplit(result.url).path
        evidence["redirects"] = list(result.redirects)
        evidence["cookies"] = sorted(session.cookies.keys())
    if result.status >= 400:
        return Finding(
            Status.FAIL,
            f"Web GUI login refused with HTTP {result.status}",
            evidence,
            "Check the Web GUI username and password in the inventory; log in once by hand to confirm them.",
        )
    if find_login_form(result.body) is not None:
        return Finding(
            Status.FAIL,
            "Web GUI login refused: the login form came back (wrong username or password)",
            evidence,
            "Check the Web GUI username and password in the inventory; log in once by hand to confirm them.",
        )
    return Finding(Status.PASS, f"Web GUI login works on TCP {port}", evidence)


_REACH_ADVICE = "Make sure TCP {port} is forwarded to the system's Web GUI and that it answers over HTTPS."


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip


def _fetch(
    session: requests.Session,
    method: str,
    url: str,
    origin: _Origin,
    deadline: Deadline,
    data: dict[str, str] | None = None,
) -> _Page:
    """One request, then redirects on the same origin only, with every wait capped by the deadline.

    Every URL is checked before it is requested, so a form or redirect can never carry the password
    to another host.
    """
    redirects: list[str] = []
    for _ in range(_MAX_REDIRECTS + 1):
        url = origin.pinned(url)
        timeout = deadline.cap(deadline.remaining())
        with session.request(method, url, data=data, allow_redirects=False, stream=True, timeout=timeout) as response:
            body = response.raw.read(_BODY_LIMIT, decode_content=True).decode(
                response.encoding or "utf-8", errors="replace"
            )
            location = response.headers.get("Location")
            if not (response.is_redirect and location):
                return _Page(url, response.status_code, body, tuple(redirects))
        url = urljoin(url, location)
        redirects.append(urlsplit(url).path)
        if response.status_code not in (307, 308):
            method, data = "GET", None
    raise requests.TooManyRedirects(f"more than {_MAX_REDIRECTS} redirects")


@dataclass(frozen=True)
class _Origin:
    """The GUI's scheme, port and names (its address and resolved IP); requests always go to the IP."""

    scheme: str
    ip: str
    port: int
    names: frozenset[str]

    @property
    def base(self) -> str:
        return f"{self.scheme}://{_url_host(self.ip)}:{self.port}"

    def pinned(self, url: str) -> str:
        parts = urlsplit(url)
        default_port = 443 if parts.scheme == "https" else 80
        same = (
            parts.scheme == self.scheme
            and (parts.hostname or "").lower() in self.names
            and (parts.port or default_port) == self.port
        )
        if not same:
            raise _OffHost(parts.netloc or url)
        return parts._replace(netloc=f"{_url_host(self.ip)}:{self.port}").geturl()
