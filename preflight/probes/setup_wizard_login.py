"""setup-wizard-login/<port>: support must be able to log in to the Setup Wizard as root with the root password.

The Setup Wizard's port may speak HTTPS or plain HTTP. Over HTTPS the login runs as gui-login's does (the same
engine, preflight.web.login, configured from the profile's `setup_wizard_login:`). Over plain HTTP the root
password would cross the internet in clear, so it is sent only when the host sets
`setup_wizard.allow_plain_http`; otherwise the page is only looked at, and the result is a warning.
"""

from __future__ import annotations

from typing import Any

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target
from preflight.web.login import Endpoint, LoginSpec, log_in

REQUIREMENT = "Support logs in to the Setup Wizard on TCP {port} as root with the root password you provide."
CREDENTIAL_KEYS = (
    "ssh.root_password (or setup_wizard.username and setup_wizard.password, where the Setup Wizard's login differs)"
)


def plan(host: Host, profile: Profile) -> list[Target]:
    settings = profile.setup_wizard_login
    if settings is None:
        return []
    port = settings.port
    return [
        Target(
            check_id=f"setup-wizard-login/{port}",
            requirement=REQUIREMENT.format(port=port),
            host=host,
            profile=profile,
            port=port,
            needs=f"service/{port}" if profile.port(port) is not None else None,
        )
    ]


def wizard_endpoints(profile: Profile, port: int, allow_plain_http: bool) -> tuple[Endpoint, ...]:
    """HTTPS first unless the profile says the port is plain HTTP; plain HTTP gets the password only if allowed."""
    required = profile.port(port)
    service = required.service if required is not None else "http-or-https"
    endpoints = []
    if service != "http":
        endpoints.append(Endpoint("https", port))
    if service != "https":
        endpoints.append(Endpoint("http", port, send_credentials=allow_plain_http))
    return tuple(endpoints)


def run(target: Target, deadline: Deadline) -> Finding:
    ip, port = target.endpoint()
    settings = target.profile.setup_wizard_login
    if settings is None:
        raise ValueError(f"{target.check_id}: the {target.profile.product} profile has no setup_wizard_login")
    wizard = target.host.setup_wizard
    # The host's own root password: the per-port SSH overrides belong to SSH ports, not to the Setup Wizard.
    password = wizard.password or target.host.ssh.root_password
    evidence: dict[str, Any] = {"username": wizard.username, "plain_http_allowed": wizard.allow_plain_http}
    if password is None:
        return Finding(
            Status.FAIL,
            "root password for the Setup Wizard not provided",
            {**evidence, "outcome": "not-provided", "port": port},
            f"Support logs in to the Setup Wizard on TCP {port} as root with the root password: add "
            "ssh.root_password to this host in the inventory (as ${ENV_VAR}), or setup_wizard.password if the "
            "Setup Wizard's differs.",
        )
    spec = LoginSpec(
        what="Setup Wizard",
        username=wizard.username,
        password=password,
        settings=settings,
        endpoints=wizard_endpoints(target.profile, port, wizard.allow_plain_http),
        allow_plain_http=wizard.allow_plain_http,
        credential_noun="root password",
        credential_keys=CREDENTIAL_KEYS,
        plain_http_key="setup_wizard.allow_plain_http",
    )
    return log_in(spec, ip, target.host.address, deadline, evidence)
