"""gui-login against the real lab GUI: nginx in front of the GUI app, as a form, with 2FA, Basic, Digest, HTTP only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.lab import LabTarget, Run, lab_target, new_secret, require_lab, run_preflight, write_inventory

ONLY_GUI = ("--only", "gui-login")


def _inventory(folder: Path, target: LabTarget, hosts: Mapping[str, Mapping[str, Any]]) -> Path:
    """One pbxware host per entry, all aimed at `target`: name -> its gui settings (password as ${VARIABLE})."""
    entries = [
        {
            "name": name,
            "product": "pbxware",
            "address": target.ip,
            "require_public_ip": False,
            "gui": {"username": target.gui_username, **gui},
        }
        for name, gui in hosts.items()
    ]
    return write_inventory(folder, yaml.safe_dump({"hosts": entries}, sort_keys=False))


def _right_and_wrong(folder: Path, target: LabTarget, extra_args: tuple[str, ...] = ONLY_GUI) -> Run:
    """A run with host `right` (the lab's GUI password) and host `wrong` (a fresh wrong one)."""
    inventory = _inventory(
        folder, target, {"right": {"password": "${GUI_PASSWORD}"}, "wrong": {"password": "${WRONG_GUI_PASSWORD}"}}
    )
    environ = {
        "GUI_PASSWORD": target.gui_password,
        "WRONG_GUI_PASSWORD": new_secret("wrong-gui"),
        "ROOT_PASSWORD": target.root_password,
    }
    return run_preflight(folder, inventory, environ, extra_args)


@pytest.fixture(scope="module")
def two_factor_gui() -> Iterator[LabTarget]:
    require_lab()
    with lab_target(ssh_ports=(), env={"GUI_AUTH": "form-2fa"}) as target:
        yield target


@pytest.fixture(scope="module")
def basic_auth_gui() -> Iterator[LabTarget]:
    require_lab()
    with lab_target(ssh_ports=(), env={"GUI_AUTH": "basic"}) as target:
        yield target


@pytest.fixture(scope="module")
def digest_auth_gui() -> Iterator[LabTarget]:
    require_lab()
    with lab_target(ssh_ports=(), env={"GUI_AUTH": "digest"}) as target:
        yield target


@pytest.fixture(scope="module")
def http_only_gui() -> Iterator[LabTarget]:
    require_lab()
    with lab_target(ssh_ports=(), env={"GUI_HTTPS": "off"}) as target:
        yield target


def test_form_login_passes_over_https_with_a_self_signed_certificate(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = _right_and_wrong(tmp_path, pbx_target)

    right = run.check("right", "gui-login/443")
    assert (right["status"], right["evidence"]["outcome"]) == ("pass", "logged-in")
    assert "self-signed certificate" in right["summary"]
    evidence = right["evidence"]
    assert (evidence["scheme"], evidence["port"], evidence["auth"]) == ("https", 443, "form")
    assert evidence["certificate"]["self_signed"] is True
    assert evidence["certificate"]["subject"] == "CN=pbx.lab.invalid"
    assert (evidence["form_action"], evidence["hidden_fields"]) == ("/login", ["csrf_token"])
    assert (evidence["username_field"], evidence["password_field"]) == ("username", "password")
    assert (evidence["after_login_path"], evidence["redirects"], evidence["decided_by"]) == (
        "/dashboard",
        ["/dashboard"],
        "redirect",
    )
    assert evidence["cookies"] == ["labsid"]


def test_form_login_with_a_wrong_password_fails(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = _right_and_wrong(tmp_path, pbx_target)

    wrong = run.check("wrong", "gui-login/443")
    assert (wrong["status"], wrong["evidence"]["outcome"]) == ("fail", "wrong-credentials")
    assert "login form came back" in wrong["summary"]
    assert "gui.username and gui.password" in wrong["remediation"]
    assert run.exit_code == 1


def test_second_factor_after_the_right_password_warns(tmp_path: Path, two_factor_gui: LabTarget) -> None:
    run = _right_and_wrong(tmp_path, two_factor_gui)

    right = run.check("right", "gui-login/443")
    assert (right["status"], right["evidence"]["outcome"]) == ("warn", "second-factor")
    assert right["summary"].startswith("credentials accepted; the account requires a second factor")
    assert right["evidence"]["second_factor_prompt"] == "otp"
    assert right["evidence"]["after_login_path"] == "/verify"
    assert "one-time code" in right["remediation"]
    wrong = run.check("wrong", "gui-login/443")
    assert (wrong["status"], wrong["evidence"]["outcome"]) == ("fail", "wrong-credentials")


def test_basic_authentication_passes_and_a_wrong_password_fails(tmp_path: Path, basic_auth_gui: LabTarget) -> None:
    run = _right_and_wrong(tmp_path, basic_auth_gui)

    right = run.check("right", "gui-login/443")
    assert (right["status"], right["evidence"]["outcome"], right["evidence"]["auth"]) == ("pass", "logged-in", "basic")
    assert (right["evidence"]["login_page_status"], right["evidence"]["http_auth_status"]) == (401, 200)
    assert right["evidence"]["auth_offered"] == ["basic"]
    wrong = run.check("wrong", "gui-login/443")
    assert (wrong["status"], wrong["evidence"]["outcome"]) == ("fail", "wrong-credentials")
    assert "asked for the password again (HTTP 401, HTTP Basic authentication)" in wrong["summary"]


def test_digest_authentication_passes_and_a_wrong_password_fails(tmp_path: Path, digest_auth_gui: LabTarget) -> None:
    run = _right_and_wrong(tmp_path, digest_auth_gui)

    right = run.check("right", "gui-login/443")
    assert (right["status"], right["evidence"]["outcome"], right["evidence"]["auth"]) == ("pass", "logged-in", "digest")
    assert (right["evidence"]["login_page_status"], right["evidence"]["http_auth_status"]) == (401, 200)
    wrong = run.check("wrong", "gui-login/443")
    assert (wrong["status"], wrong["evidence"]["outcome"]) == ("fail", "wrong-credentials")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_lab_digest_server_accepts_an_independent_client(digest_auth_gui: LabTarget) -> None:
    """requests' own HTTPDigestAuth logs in too, so the lab speaks standard Digest, not preflight's dialect of it."""
    url = f"https://{digest_auth_gui.ip}/dashboard"
    auth = requests.auth.HTTPDigestAuth(digest_auth_gui.gui_username, digest_auth_gui.gui_password)
    with requests.Session() as session:
        session.trust_env = False
        accepted = session.get(url, auth=auth, verify=False, timeout=10)
        refused = session.get(url, verify=False, timeout=10)

    assert (accepted.status_code, refused.status_code) == (200, 401)
    assert "Dashboard" in accepted.text


def test_http_only_gui_fails_without_the_opt_in_and_warns_with_it(tmp_path: Path, http_only_gui: LabTarget) -> None:
    inventory = _inventory(
        tmp_path,
        http_only_gui,
        {
            "strict": {"password": "${GUI_PASSWORD}"},
            "opted-in": {"password": "${GUI_PASSWORD}", "allow_plain_http": True},
        },
    )
    environ = {"GUI_PASSWORD": http_only_gui.gui_password}
    run = run_preflight(tmp_path, inventory, environ, ONLY_GUI)

    strict = run.check("strict", "gui-login/443")
    assert (strict["status"], strict["evidence"]["outcome"]) == ("fail", "https-unavailable")
    assert strict["summary"] == (
        "the Web GUI on TCP 443 refused the connection over HTTPS; "
        "plain HTTP was not tried, because it would send the password in clear"
    )
    assert "allow_plain_http" in strict["remediation"]
    opted_in = run.check("opted-in", "gui-login/443")
    assert (opted_in["status"], opted_in["evidence"]["outcome"]) == ("warn", "plain-http")
    assert "over plain HTTP: the password crosses the internet in clear" in opted_in["summary"]
    assert (opted_in["evidence"]["scheme"], opted_in["evidence"]["port"]) == ("http", 80)
    assert opted_in["evidence"]["not_answered"] == ["https 443: refused the connection"]
    assert opted_in["evidence"]["after_login_path"] == "/dashboard"
    assert "Forward TCP 443" in opted_in["remediation"]


def test_http_only_gui_in_a_full_run(tmp_path: Path, http_only_gui: LabTarget) -> None:
    """Without the opt-in the login waits for service/443 and is skipped; with it, it logs in over HTTP anyway."""
    inventory = _inventory(
        tmp_path,
        http_only_gui,
        {
            "strict": {"password": "${GUI_PASSWORD}"},
            "opted-in": {"password": "${GUI_PASSWORD}", "allow_plain_http": True},
        },
    )
    run = run_preflight(
        tmp_path, inventory, {"GUI_PASSWORD": http_only_gui.gui_password}, ("--only", "tcp,service,gui-login")
    )

    assert run.exit_code == 1
    for host in ("strict", "opted-in"):
        assert run.check(host, "tcp/443")["evidence"]["state"] == "closed"
        assert run.check(host, "service/80")["status"] == "pass"
    strict = run.check("strict", "gui-login/443")
    assert (strict["status"], strict["summary"]) == ("skipped", "not attempted: tcp/443 is closed")
    assert run.check("opted-in", "gui-login/443")["status"] == "warn"
