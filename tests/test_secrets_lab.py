"""No password (nor key passphrase) in any output: every SSH, GUI and Setup Wizard variant of the lab in one `preflight check -vv`, then a
second run where every SSH host key has changed; stdout, stderr (the -vv log), JSON, HTML, JUnit and the known_hosts
file are searched for each password in clear and in every encoding it travels in.

The passwords hold a space and + / = & % ? # ! ' so that URL-encoding (quote, quote_plus) and base64 each change them:
a search for the clear text alone would miss an encoded leak.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import paramiko
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from preflight.known_hosts import fingerprint_of
from tests.lab import LabTarget, Run, assert_no_secrets, lab_target, require_lab, run_preflight, secret_forms

CHECKS = ("--only", "tcp,service,ssh-root,gui-login,setup-wizard-login")
USERNAMES = ("root", "admin")


def awkward_secret(label: str) -> str:
    """A password unique to this run that URL-encoding and base64 both change: the forms to search for differ."""
    return f"{label} {secrets.token_urlsafe(9)}+/=&%?#!'"


# name -> the variant's entrypoint settings (lab/target/entrypoint.sh); each container gets passwords of its own.
VARIANTS: Mapping[str, tuple[tuple[int, ...], Mapping[str, str], tuple[int, ...]]] = {
    "form": ((2020,), {}, ()),
    "basic": ((2020,), {"GUI_AUTH": "basic", "SSH_AUTH": "keyboard-interactive", "SETUP_WIZARD": "http"}, (81,)),
    "digest": ((2020,), {"GUI_AUTH": "digest", "SSH_AUTH": "otp", "SETUP_WIZARD": "off"}, ()),
    "2fa": ((2020,), {"GUI_AUTH": "form-2fa", "SSH_AUTH": "publickey", "SSH_PERMIT_ROOT_LOGIN": "no"}, ()),
    "http": ((), {"GUI_HTTPS": "off", "SETUP_WIZARD": "off"}, ()),
}


@pytest.fixture(scope="module")
def targets() -> Iterator[dict[str, LabTarget]]:
    require_lab()
    with contextlib.ExitStack() as stack:
        started = {}
        for name, (ssh_ports, env, wait_ports) in VARIANTS.items():
            passwords = {"ROOT_PASSWORD": awkward_secret(f"root-{name}"), "GUI_PASSWORD": awkward_secret(f"gui-{name}")}
            started[name] = stack.enter_context(
                lab_target(ssh_ports=ssh_ports, env={**env, **passwords}, wait_ports=wait_ports)
            )
        yield started


def _host(name: str, target: LabTarget, product: str = "pbxware", **keys: Any) -> dict[str, Any]:
    return {"name": name, "product": product, "address": target.ip, "require_public_ip": False, **keys}


def _logins(root: str, gui: str, gui_plain_http: bool = False, **extra: Any) -> dict[str, Any]:
    gui_keys = {
        "username": "admin",
        "password": f"${{{gui}}}",
        **({"allow_plain_http": True} if gui_plain_http else {}),
    }
    return {"ssh": {"root_password": f"${{{root}}}"}, "gui": gui_keys, **extra}


def _inventory(folder: Path, targets: Mapping[str, LabTarget]) -> tuple[Path, dict[str, str]]:
    """Every variant, with the right passwords and with wrong ones; the environment the inventory refers to."""
    environ = {}
    for name, target in targets.items():
        key = name.upper().replace("2", "TWO_")
        environ[f"{key}_ROOT"], environ[f"{key}_GUI"] = target.root_password, target.gui_password
    environ["WRONG_ROOT"], environ["WRONG_GUI"] = awkward_secret("wrong-root"), awkward_secret("wrong-gui")
    environ["KEY_PASSPHRASE"], environ["WRONG_PASSPHRASE"] = awkward_secret("phrase"), awkward_secret("wrong-phrase")
    key_file = folder / "id_ed25519"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(environ["KEY_PASSPHRASE"].encode()),
        )
    )
    key_file.chmod(0o600)
    form, basic, digest, two_factor, http = (targets[name] for name in ("form", "basic", "digest", "2fa", "http"))
    impostor = fingerprint_of(paramiko.ECDSAKey.generate().asbytes())
    opt_in = {"allow_plain_http": True}
    hosts = [
        _host("form-right", form, **_logins("FORM_ROOT", "FORM_GUI")),
        _host("form-wrong", form, **_logins("WRONG_ROOT", "WRONG_GUI")),
        _host("form-pin-mismatch", form, ssh={"root_password": "${FORM_ROOT}", "host_key": impostor}),
        _host("key-not-authorized", form, ssh={"key_file": str(key_file), "key_passphrase": "${KEY_PASSPHRASE}"}),
        _host("key-wrong-passphrase", form, ssh={"key_file": str(key_file), "key_passphrase": "${WRONG_PASSPHRASE}"}),
        _host("basic-kbd-right", basic, **_logins("BASIC_ROOT", "BASIC_GUI")),
        _host("basic-kbd-wrong", basic, **_logins("WRONG_ROOT", "WRONG_GUI", setup_wizard=opt_in)),
        _host("wizard-http-opt-in", basic, ssh={"root_password": "${BASIC_ROOT}"}, setup_wizard=opt_in),
        _host("digest-otp-right", digest, **_logins("DIGEST_ROOT", "DIGEST_GUI")),
        _host("digest-otp-wrong", digest, **_logins("WRONG_ROOT", "WRONG_GUI")),
        _host("second-factor", two_factor, **_logins("TWO_FA_ROOT", "TWO_FA_GUI")),
        _host("gui-http-refused", http, **_logins("HTTP_ROOT", "HTTP_GUI")),
        _host("gui-http-opt-in", http, **_logins("HTTP_ROOT", "HTTP_GUI", gui_plain_http=True)),
        # Refused after the fall-back to plain HTTP: the fix names the HTTPS port too (the run checks every fix does).
        _host("gui-http-opt-in-wrong", http, **_logins("HTTP_ROOT", "WRONG_GUI", gui_plain_http=True)),
        _host("ssh-2222-refused", two_factor, "serverware", **_logins("TWO_FA_ROOT", "TWO_FA_GUI")),
    ]
    path = folder / "inventory.yaml"
    path.write_text(yaml.safe_dump({"hosts": hosts}, sort_keys=False))
    path.chmod(0o600)
    return path, environ


def _outputs(run: Run, folder: Path) -> dict[str, str]:
    return {
        **run.outputs(),
        "junit": (folder / "report.xml").read_text(),
        "known_hosts": (folder / "known_hosts").read_text(),
    }


def _check(folder: Path, inventory: Path, environ: Mapping[str, str], *extra: str) -> tuple[Run, dict[str, str]]:
    run = run_preflight(
        folder,
        inventory,
        environ,
        [*CHECKS, "-vv", "--junit", str(folder / "report.xml"), "--known-hosts", str(folder / "known_hosts"), *extra],
    )
    return run, _outputs(run, folder)


def test_no_password_in_any_output_of_any_variant_in_any_encoding(
    tmp_path: Path, targets: dict[str, LabTarget]
) -> None:
    inventory, environ = _inventory(tmp_path, targets)
    forms = secret_forms(list(environ.values()), USERNAMES)

    run, outputs = _check(tmp_path, inventory, environ)

    # The variants did what they are for: each password was used (or, where it must not be, was withheld).
    outcomes = {
        (host, check): run.check(host, check)["evidence"].get("outcome")
        for host, check in [
            ("form-right", "ssh-root/2020"),
            ("form-right", "gui-login/443"),
            ("form-right", "setup-wizard-login/81"),
            ("form-wrong", "ssh-root/2020"),
            ("form-wrong", "gui-login/443"),
            ("form-pin-mismatch", "ssh-root/2020"),
            ("key-not-authorized", "ssh-root/2020"),
            ("key-wrong-passphrase", "ssh-root/2020"),
            ("basic-kbd-right", "ssh-root/2020"),
            ("basic-kbd-right", "gui-login/443"),
            ("basic-kbd-right", "setup-wizard-login/81"),
            ("basic-kbd-wrong", "ssh-root/2020"),
            ("basic-kbd-wrong", "gui-login/443"),
            ("wizard-http-opt-in", "setup-wizard-login/81"),
            ("digest-otp-right", "ssh-root/2020"),
            ("digest-otp-right", "gui-login/443"),
            ("digest-otp-wrong", "gui-login/443"),
            ("second-factor", "ssh-root/2020"),
            ("second-factor", "gui-login/443"),
            ("gui-http-refused", "gui-login/443"),
            ("gui-http-opt-in", "gui-login/443"),
            ("gui-http-opt-in-wrong", "gui-login/443"),
        ]
    }
    assert outcomes == {
        ("form-right", "ssh-root/2020"): "root-login",
        ("form-right", "gui-login/443"): "logged-in",
        ("form-right", "setup-wizard-login/81"): "logged-in",
        ("form-wrong", "ssh-root/2020"): "password-refused",
        ("form-wrong", "gui-login/443"): "wrong-credentials",
        ("form-pin-mismatch", "ssh-root/2020"): "host-key-pin-mismatch",
        ("key-not-authorized", "ssh-root/2020"): "key-refused",
        ("key-wrong-passphrase", "ssh-root/2020"): "key-file-unusable",
        ("basic-kbd-right", "ssh-root/2020"): "root-login",
        ("basic-kbd-right", "gui-login/443"): "logged-in",
        ("basic-kbd-right", "setup-wizard-login/81"): "plain-http-not-sent",
        ("basic-kbd-wrong", "ssh-root/2020"): "password-refused",
        ("basic-kbd-wrong", "gui-login/443"): "wrong-credentials",
        ("wizard-http-opt-in", "setup-wizard-login/81"): "plain-http",
        ("digest-otp-right", "ssh-root/2020"): "one-time-code-required",
        ("digest-otp-right", "gui-login/443"): "logged-in",
        ("digest-otp-wrong", "gui-login/443"): "wrong-credentials",
        ("second-factor", "ssh-root/2020"): "password-auth-disabled",
        ("second-factor", "gui-login/443"): "second-factor",
        ("gui-http-refused", "gui-login/443"): None,
        ("gui-http-opt-in", "gui-login/443"): "plain-http",
        ("gui-http-opt-in-wrong", "gui-login/443"): "wrong-credentials",
    }, outcomes
    assert run.check("ssh-2222-refused", "tcp/2222")["evidence"]["state"] == "closed"
    assert "paramiko" in run.stderr and "urllib3" in run.stderr  # -vv: the libraries' own logs are in stderr
    # Declining the one-time-code prompt is a decision: paramiko's ERROR and traceback for it become one DEBUG line.
    assert "DEBUG paramiko.transport: keyboard-interactive prompt declined (one-time-code-required)" in run.stderr
    _assert_clean(outputs, forms)

    # A second run after every SSH host key changed: the refusal path names keys and files, never a password.
    known_hosts = tmp_path / "known_hosts"
    impostor = paramiko.ECDSAKey.generate().get_base64()
    known_hosts.write_text(
        "".join(f"{line.split()[0]} ecdsa-sha2-nistp256 {impostor}\n" for line in known_hosts.read_text().splitlines())
    )
    changed_run, changed_outputs = _check(tmp_path, inventory, environ)
    assert changed_run.check("form-right", "ssh-root/2020")["evidence"]["outcome"] == "host-key-changed"
    _assert_clean(changed_outputs, forms)


def _assert_clean(outputs: Mapping[str, str], forms: list[str]) -> None:
    # By name only: the assertion message must not print the secret it found.
    leaks = [(where, index) for where, text in outputs.items() for index, form in enumerate(forms) if form in text]
    assert leaks == [], f"password forms (by index) found in outputs: {leaks}"


def test_the_search_covers_each_encoding_and_finds_a_planted_leak() -> None:
    password = awkward_secret("probe")
    forms = secret_forms([password], USERNAMES)
    encoded = {
        "clear": password,
        "quote": quote(password, safe=""),
        "quote-slash": quote(password),
        "quote_plus": quote_plus(password),
        "base64": base64.b64encode(password.encode()).decode(),
        "basic-root": base64.b64encode(f"root:{password}".encode()).decode(),
        "basic-admin": base64.b64encode(f"admin:{password}".encode()).decode(),
    }
    # Every encoding differs from the clear text, so each is a search of its own.
    assert len(set(encoded.values())) == len(encoded)
    for how, text in encoded.items():
        assert text in forms, how
        with pytest.raises(AssertionError):
            assert_no_secrets({"stderr": f"DEBUG header: Authorization: Basic {text}\n"}, forms)
    assert_no_secrets({"stderr": "DEBUG header: Authorization: Basic [masked]\n"}, forms)
