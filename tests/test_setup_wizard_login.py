"""The pure parts of setup-wizard-login and the inventory keys of issue 12: where the Setup Wizard login is tried,
whose password it takes, what the inventory accepts, and <meta> CSRF tokens. The logins themselves are proved
against real servers in test_setup_wizard_lab.py, test_login_shapes_lab.py and test_ssh_certificate_lab.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from preflight.deadline import Deadline
from preflight.inventory import load_inventory
from preflight.located_yaml import ConfigError
from preflight.model import Status
from preflight.probes import setup_wizard_login
from preflight.probes.setup_wizard_login import wizard_endpoints
from preflight.profiles import Profile, RequiredPort, load_profiles
from preflight.target import Target
from preflight.web.html_forms import meta_csrf_fields
from preflight.web.login import Endpoint

PROFILES = load_profiles()
PBXWARE = PROFILES["pbxware"]


def _with_81(service: str) -> Profile:
    ports = tuple(
        RequiredPort(port=81, service=service, purpose="x") if required.port == 81 else required  # type: ignore[arg-type]
        for required in PBXWARE.ports
    )
    return PBXWARE.model_copy(update={"ports": ports})


@pytest.mark.parametrize(
    ("service", "allow", "expected"),
    [
        ("http-or-https", False, (Endpoint("https", 81), Endpoint("http", 81, send_credentials=False))),
        ("http-or-https", True, (Endpoint("https", 81), Endpoint("http", 81))),
        ("https", False, (Endpoint("https", 81),)),
        ("http", False, (Endpoint("http", 81, send_credentials=False),)),
        ("http", True, (Endpoint("http", 81),)),
    ],
)
def test_plain_http_gets_the_root_password_only_with_the_opt_in(
    service: str, allow: bool, expected: tuple[Endpoint, ...]
) -> None:
    assert wizard_endpoints(_with_81(service), 81, allow) == expected


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[object]:
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return list(load_inventory(path, PROFILES, environ or {}).hosts)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    return str(raised.value)


def test_the_wizard_password_defaults_to_the_hosts_root_password_not_a_per_port_one(tmp_path: Path) -> None:
    (host,) = _load(
        tmp_path,
        """\
        hosts:
          - name: sw
            product: serverware
            address: 192.0.2.1
            ssh:
              root_password: ${ROOT}
              per_port:
                2020:
                  root_password: ${OTHER}
        """,
        {"ROOT": "root-secret-1234", "OTHER": "other-secret-1234"},
    )
    # Port 1 on loopback refuses at once: the login gets as far as trying, as root.
    target = Target("setup-wizard-login/81", "r", host, PROFILES["serverware"], port=1, ip="127.0.0.1")  # type: ignore[arg-type]

    finding = setup_wizard_login.run(target, Deadline(2))

    assert (finding.status, finding.evidence["username"], finding.evidence["outcome"]) == (
        Status.FAIL,
        "root",
        "no-answer",
    )
    assert finding.evidence["not_answered"] == ["https 1: refused the connection", "http 1: refused the connection"]
    assert "root-secret-1234" not in repr(finding) and "other-secret-1234" not in repr(finding)


def test_a_host_without_a_root_password_fails_naming_the_keys(tmp_path: Path) -> None:
    (host,) = _load(tmp_path, "hosts:\n  - {name: p, product: pbxware, address: 192.0.2.1}\n")
    target = Target("setup-wizard-login/81", "r", host, PBXWARE, port=81, ip="127.0.0.1")  # type: ignore[arg-type]

    finding = setup_wizard_login.run(target, Deadline(2))

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "not-provided")
    assert "ssh.root_password" in finding.remediation and "TCP 81" in finding.remediation


def test_the_wizard_password_is_a_secret_of_the_host(tmp_path: Path) -> None:
    (host,) = _load(
        tmp_path,
        "hosts:\n  - {name: p, product: pbxware, address: 192.0.2.1, setup_wizard: {password: '${W}'}}\n",
        {"W": "wizard-secret-1234"},
    )
    assert host.secrets() == ("wizard-secret-1234",)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "hosts:\n  - {name: p, product: pbxware, address: 192.0.2.1, setup_wizard: {allow_plain_http: 'yes'}}\n",
            "inventory.yaml:2: hosts[0].setup_wizard.allow_plain_http: must be true or false",
        ),
        (
            "hosts:\n  - {name: p, product: pbxware, address: 192.0.2.1, setup_wizard: {user: root}}\n",
            "inventory.yaml:2: hosts[0].setup_wizard.user: unknown key; expected one of: username, password, "
            "allow_plain_http",
        ),
        (
            "hosts:\n  - {name: p, product: pbxware, address: 192.0.2.1, ssh: {certificate_file: c-cert.pub}}\n",
            "inventory.yaml:2: hosts[0].ssh.certificate_file: needs key_file: the certificate is offered with its "
            "private key",
        ),
        (
            "hosts:\n  - {name: p, product: pbxware, address: 192.0.2.1, profiles: [voip, voip]}\n",
            "inventory.yaml:2: hosts[0].profiles[1]: 'voip' is listed twice",
        ),
    ],
    ids=["plain-http-opt-in-not-a-boolean", "unknown-wizard-key", "certificate-without-key", "add-on-twice"],
)
def test_new_inventory_keys_are_validated_with_located_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c-cert.pub").write_text("x\n")
    assert _error(tmp_path, text) == message


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<meta name="csrf-token" content="abc"><form></form>', {"csrf-token": "abc"}),
        ('<meta name="_csrf" content="t"><meta name="viewport" content="w">', {"_csrf": "t"}),
        (
            '<meta name="csrf-param" content="authenticity_token"><meta name="csrf-token" content="r">',
            {"authenticity_token": "r"},
        ),
        ('<meta name="description" content="PBX">', {}),
    ],
    ids=["same-name", "underscore", "rails-pair", "none"],
)
def test_a_meta_csrf_token_is_sent_as_the_field_it_names(html: str, expected: dict[str, str]) -> None:
    assert meta_csrf_fields(html) == expected
