"""gui-login/<port>: support must be able to log in to the Web GUI with the credentials you provide.

The login goes over HTTPS on the profile's GUI port. Plain HTTP would send the password in clear, so the
profile's HTTP ports are tried only when the inventory sets `gui.allow_plain_http`, only after HTTPS did not
answer, and a login there is a warning. The login itself is preflight.web.login's, configured from the profile's
`gui_login:` settings.
"""

from __future__ import annotations

from typing import Any

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target
from preflight.web.login import Endpoint, LoginSpec, log_in

REQUIREMENT = "Support logs in to the Web GUI on TCP {port} with the GUI username and password you provide."


def plan(host: Host, profile: Profile) -> list[Target]:
    if profile.gui_login is None:
        return []
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


def run(target: Target, deadline: Deadline) -> Finding:
    ip, port = target.endpoint()
    gui, settings = target.host.gui, target.profile.gui_login
    if settings is None:
        raise ValueError(f"{target.check_id}: the {target.profile.product} profile has no gui_login")
    if not gui.username or gui.password is None:
        return Finding(
            Status.FAIL,
            "Web GUI username and password not provided",
            {"outcome": "not-provided", "port": port},
            f"Support needs the Web GUI login on TCP {port}: add gui.username and gui.password to this host in the "
            "inventory (the password as ${ENV_VAR}).",
        )
    endpoints = login_endpoints(target.profile, port, gui.allow_plain_http)
    evidence: dict[str, Any] = {"plain_http_allowed": gui.allow_plain_http}
    if not endpoints:
        return Finding(
            Status.FAIL,
            f"the Web GUI on TCP {port} is plain HTTP, and a login there would send the password in clear",
            {**evidence, "outcome": "plain-http-not-allowed", "scheme": "http", "port": port},
            f"Give support the Web GUI over HTTPS. To accept a login over plain HTTP on TCP {port} anyway, set "
            "gui.allow_plain_http: true for this host: the password then crosses the internet unencrypted.",
        )
    spec = LoginSpec(
        what="Web GUI",
        username=gui.username,
        password=gui.password,
        settings=settings,
        endpoints=tuple(endpoints),
        allow_plain_http=gui.allow_plain_http,
        plain_http_left_out=not gui.allow_plain_http and bool(target.profile.ports_for("http")),
    )
    return log_in(spec, ip, target.host.address, deadline, evidence)
