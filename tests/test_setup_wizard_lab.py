"""setup-wizard-login/81 and service/81 against the lab's Setup Wizard: nginx on 81, over HTTPS or plain HTTP, in
front of a PHP-style login page (lab/target/login_shapes.py's redirect-chain) that takes root and the root password.

The wizard logs every POST with the fields it got and which of them held the right password, so the tests prove from
the server's side whether the root password was sent, and where.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab import (
    LabTarget,
    Run,
    assert_no_secrets,
    lab_target,
    new_secret,
    require_lab,
    run_preflight,
    secret_forms,
    write_inventory,
)

CHECKS = ("--only", "tcp,service,setup-wizard-login")


@pytest.fixture(scope="module")
def plain_http_wizard() -> Iterator[LabTarget]:
    """A lab host whose Setup Wizard answers only plain HTTP on 81."""
    require_lab()
    with lab_target(ssh_ports=(), env={"SETUP_WIZARD": "http"}, wait_ports=(81,)) as target:
        yield target


def _run(folder: Path, target: LabTarget, hosts: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str]) -> Run:
    """One pbxware host per entry, all aimed at `target`: name -> its own inventory keys (ssh, setup_wizard)."""
    entries = [
        {"name": name, "product": "pbxware", "address": target.ip, "require_public_ip": False, **keys}
        for name, keys in hosts.items()
    ]
    inventory = write_inventory(folder, yaml.safe_dump({"hosts": entries}, sort_keys=False))
    run = run_preflight(folder, inventory, environ, CHECKS)
    assert_no_secrets(run.outputs(), secret_forms(list(environ.values()), ["root", "admin"]))
    return run


def _wizard_posts(target: LabTarget, before: str) -> list[str]:
    return [line for line in target.logs()[len(before) :].splitlines() if "shape redirect-chain: POST" in line]


def test_login_over_https_passes_with_the_root_password_and_fails_with_a_wrong_one(
    tmp_path: Path, pbx_target: LabTarget
) -> None:
    before = pbx_target.logs()
    environ = {"ROOT_PASSWORD": pbx_target.root_password, "WRONG": new_secret("wrong-root")}
    run = _run(
        tmp_path,
        pbx_target,
        {"right": {"ssh": {"root_password": "${ROOT_PASSWORD}"}}, "wrong": {"ssh": {"root_password": "${WRONG}"}}},
        environ,
    )

    service = run.check("right", "service/81")
    assert (service["status"], service["evidence"]["scheme"]) == ("pass", "https")
    assert service["evidence"]["certificate"]["subject"] == "CN=pbx.lab.invalid"
    right = run.check("right", "setup-wizard-login/81")
    assert (right["status"], right["evidence"]["outcome"]) == ("pass", "logged-in")
    assert right["summary"] == "Setup Wizard login works on TCP 81 (form login; self-signed certificate)"
    evidence = right["evidence"]
    assert (evidence["scheme"], evidence["username"], evidence["login_page_redirects"]) == (
        "https",
        "root",
        ["/index.php"],
    )
    assert (evidence["username_field"], evidence["password_field"], evidence["decided_by"]) == (
        "username",
        "password",
        "redirect",
    )
    assert evidence["certificate"]["self_signed"] is True
    wrong = run.check("wrong", "setup-wizard-login/81")
    assert (wrong["status"], wrong["evidence"]["outcome"]) == ("fail", "wrong-credentials")
    assert wrong["summary"] == "Setup Wizard login refused: the login form came back (wrong username or root password)"
    assert "ssh.root_password" in wrong["remediation"] and "TCP 81" in wrong["remediation"]
    # One submission per host; the right password went to the password field only.
    posts = _wizard_posts(pbx_target, before)
    assert len(posts) == 2
    assert sorted(post.split("password_in=")[1] for post in posts) == ["['password']", "[]"]


def test_setup_wizard_credentials_override_the_root_password_and_per_port_ssh_overrides_do_not(
    tmp_path: Path, pbx_target: LabTarget
) -> None:
    environ = {"ROOT_PASSWORD": pbx_target.root_password, "OTHER": new_secret("ssh-only")}
    run = _run(
        tmp_path,
        pbx_target,
        {
            # The per-port override is for SSH on 2020; the Setup Wizard still gets the host's root password.
            "per-port": {
                "ssh": {"root_password": "${ROOT_PASSWORD}", "per_port": {2020: {"root_password": "${OTHER}"}}}
            },
            # setup_wizard.password wins over ssh.root_password.
            "own": {"ssh": {"root_password": "${OTHER}"}, "setup_wizard": {"password": "${ROOT_PASSWORD}"}},
            "other-user": {"setup_wizard": {"username": "admin", "password": "${ROOT_PASSWORD}"}},
            "none": {},
        },
        environ,
    )

    assert run.check("per-port", "setup-wizard-login/81")["status"] == "pass"
    assert run.check("own", "setup-wizard-login/81")["status"] == "pass"
    other_user = run.check("other-user", "setup-wizard-login/81")
    assert (other_user["status"], other_user["evidence"]["username"]) == ("fail", "admin")
    missing = run.check("none", "setup-wizard-login/81")
    assert (missing["status"], missing["evidence"]["outcome"]) == ("fail", "not-provided")
    assert "ssh.root_password" in missing["remediation"]


def test_plain_http_wizard_warns_and_the_root_password_is_not_sent(
    tmp_path: Path, plain_http_wizard: LabTarget
) -> None:
    before = plain_http_wizard.logs()
    run = _run(
        tmp_path,
        plain_http_wizard,
        {"lab": {"ssh": {"root_password": "${ROOT_PASSWORD}"}}},
        {"ROOT_PASSWORD": plain_http_wizard.root_password},
    )

    service = run.check("lab", "service/81")
    assert (service["status"], service["evidence"]["scheme"]) == ("pass", "http")
    assert service["summary"].endswith("(plain HTTP: no TLS on this port)")
    assert "certificate" not in service["evidence"]
    wizard = run.check("lab", "setup-wizard-login/81")
    assert (wizard["status"], wizard["evidence"]["outcome"]) == ("warn", "plain-http-not-sent")
    assert wizard["summary"] == "the Setup Wizard answers only plain HTTP; the root password was not sent (TCP 81)"
    assert wizard["evidence"]["not_answered"] == ["https 81: failed the TLS handshake"]
    assert wizard["evidence"]["login_form_found"] is True
    assert "setup_wizard.allow_plain_http: true" in wizard["remediation"]
    # The server saw the login page fetched, and no POST at all.
    assert "GET /index.php?section=login" in plain_http_wizard.logs()[len(before) :]
    assert _wizard_posts(plain_http_wizard, before) == []


def test_plain_http_wizard_with_the_opt_in_logs_in_and_warns(tmp_path: Path, plain_http_wizard: LabTarget) -> None:
    before = plain_http_wizard.logs()
    run = _run(
        tmp_path,
        plain_http_wizard,
        {"lab": {"ssh": {"root_password": "${ROOT_PASSWORD}"}, "setup_wizard": {"allow_plain_http": True}}},
        {"ROOT_PASSWORD": plain_http_wizard.root_password},
    )

    wizard = run.check("lab", "setup-wizard-login/81")
    assert (wizard["status"], wizard["evidence"]["outcome"], wizard["evidence"]["scheme"]) == (
        "warn",
        "plain-http",
        "http",
    )
    assert "over plain HTTP: the root password crosses the internet in clear" in wizard["summary"]
    assert "Make the Setup Wizard on TCP 81 answer over HTTPS" in wizard["remediation"]
    assert [post.split("password_in=")[1] for post in _wizard_posts(plain_http_wizard, before)] == ["['password']"]
