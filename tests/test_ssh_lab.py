"""ssh-root/<port> and host-key safety end to end against real OpenSSH in lab containers, proved by sshd's own log.

Each variant is a lab container started with the environment lab/target/entrypoint.sh reads: `SSH_PERMIT_ROOT_LOGIN`,
`SSH_AUTH` (password, keyboard-interactive, otp, publickey) and `SSH_SESSION_UID`.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import paramiko
import pytest

from tests.lab import (
    LabTarget,
    Run,
    lab_inventory,
    lab_secrets,
    lab_target,
    new_secret,
    require_lab,
    rotate_host_keys,
    run_preflight,
    served_host_key,
    sshd_lines_of,
    sshd_log_after,
    sshd_log_lines,
)
from tests.requirements import need_tool

# What OpenSSH 9.2 logs at LogLevel INFO for an authentication attempt as root; PAM's line covers keyboard-interactive.
PASSWORD_ATTEMPT_WORDS = (
    "Failed password",
    "Accepted password",
    "keyboard-interactive",
    "Failed publickey",
    "PAM: Authentication failure",
)


@pytest.fixture(scope="module")
def variant(request: pytest.FixtureRequest) -> Iterator[LabTarget]:
    """A lab target with sshd on 2020 only, set up by the entrypoint variables in `request.param`."""
    require_lab()
    env: Mapping[str, str] = request.param
    with lab_target(ssh_ports=(2020,), env=env) as target:
        yield target


def _check_ssh(
    tmp_path: Path,
    target: LabTarget,
    *,
    environ: Mapping[str, str] | None = None,
    ssh: Mapping[str, Any] | None = None,
    extra_args: Sequence[str] = (),
) -> tuple[Run, dict[str, Any]]:
    """Run `preflight check --only ssh-root` with its own known_hosts file; the run and the ssh-root/2020 result."""
    run = run_preflight(
        tmp_path,
        lab_inventory(tmp_path, target, ssh=ssh),
        environ if environ is not None else lab_secrets(target),
        ["--only", "ssh-root", "--known-hosts", str(tmp_path / "known_hosts"), *extra_args],
    )
    return run, run.check("lab", "ssh-root/2020")


def _password_attempts(lines: Sequence[str]) -> list[str]:
    return [line for line in lines if "root" in line and any(word in line for word in PASSWORD_ATTEMPT_WORDS)]


def test_wrong_root_password_is_password_refused(tmp_path: Path, pbx_target: LabTarget) -> None:
    before = sshd_log_lines(pbx_target)
    environ = lab_secrets(pbx_target, ROOT_PASSWORD=new_secret("wrong-root"), RIGHT_ROOT=pbx_target.root_password)

    run, login = _check_ssh(tmp_path, pbx_target, environ=environ)

    assert run.exit_code == 1
    assert (login["status"], login["evidence"]["outcome"], login["evidence"]["auth_method"]) == (
        "fail",
        "password-refused",
        "password",
    )
    assert "either the password is wrong or root may not log in with a password" in login["summary"]
    assert "Check the root password" in login["remediation"]
    port = login["evidence"]["local_port"]
    lines = sshd_lines_of(sshd_log_after(pbx_target, before, port, "Failed password"), port)
    assert any("Failed password for root" in line for line in lines), lines


@pytest.mark.parametrize("variant", [{"SSH_PERMIT_ROOT_LOGIN": "no"}], indirect=True, ids=["permit-root-login-no"])
def test_permit_root_login_no_looks_like_a_wrong_password_and_says_so(tmp_path: Path, variant: LabTarget) -> None:
    before = sshd_log_lines(variant)

    _, login = _check_ssh(tmp_path, variant)

    assert (login["status"], login["evidence"]["outcome"]) == ("fail", "password-refused")
    assert "password" in login["evidence"]["auth_methods_offered"]
    assert "SSH answers both the same way, so preflight cannot tell which" in login["summary"]
    assert "'PermitRootLogin yes'" in login["remediation"]
    # OpenSSH asks for the right password and refuses it, exactly as it refuses a wrong one.
    port = login["evidence"]["local_port"]
    assert any(
        "Failed password for root" in line for line in sshd_lines_of(sshd_log_after(variant, before, port), port)
    )


@pytest.mark.parametrize("variant", [{"SSH_AUTH": "keyboard-interactive"}], indirect=True, ids=["kbd-interactive"])
def test_keyboard_interactive_only_server_passes_through_its_password_prompt(
    tmp_path: Path, variant: LabTarget
) -> None:
    before = sshd_log_lines(variant)

    run, login = _check_ssh(tmp_path, variant)

    assert run.exit_code == 0, login
    evidence = login["evidence"]
    assert (login["status"], evidence["outcome"], evidence["auth_method"], evidence["uid"]) == (
        "pass",
        "root-login",
        "keyboard-interactive",
        0,
    )
    assert evidence["auth_methods_offered"] == ["publickey", "keyboard-interactive"]
    assert evidence["prompts"] == ["Password:"]
    port = evidence["local_port"]
    lines = sshd_lines_of(sshd_log_after(variant, before, port, "Accepted keyboard-interactive"), port)
    assert any("Accepted keyboard-interactive/pam for root" in line for line in lines), lines


@pytest.mark.parametrize("variant", [{"SSH_AUTH": "otp"}], indirect=True, ids=["one-time-code"])
def test_one_time_code_prompt_fails_and_never_gets_the_password(tmp_path: Path, variant: LabTarget) -> None:
    before = sshd_log_lines(variant)

    _, login = _check_ssh(tmp_path, variant)

    assert (login["status"], login["evidence"]["outcome"]) == ("fail", "one-time-code-required")
    assert "the account requires a one-time code" in login["summary"]
    assert login["evidence"]["declined_prompt"].startswith("One-time password (OATH)")
    port = login["evidence"]["local_port"]
    lines = sshd_log_after(variant, before, port)
    assert any("Connection closed by authenticating user root" in line for line in sshd_lines_of(lines, port)), lines
    # Any answer to pam_oath's prompt, the password or anything else, would be logged as a failed attempt.
    assert _password_attempts(lines) == []

    # The control: the same log does show an answer given to that prompt.
    before_control = sshd_log_lines(variant)
    control_port = _answer_every_prompt(variant, "000000")
    control = sshd_log_after(variant, before_control, control_port)
    assert any("PAM: Authentication failure for root" in line for line in control)


def _answer_every_prompt(target: LabTarget, answer: str) -> int:
    """Answer each keyboard-interactive prompt with `answer`; the client port the attempt came from."""
    with socket.create_connection((target.ip, 2020), timeout=10) as sock, paramiko.Transport(sock) as transport:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.AuthenticationException):
            transport.auth_interactive("root", lambda title, instructions, prompts: [answer for _ in prompts])
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("variant", [{"SSH_AUTH": "publickey"}], indirect=True, ids=["publickey-only"])
def test_server_that_takes_only_keys_reports_password_authentication_disabled(
    tmp_path: Path, variant: LabTarget
) -> None:
    before = sshd_log_lines(variant)

    _, login = _check_ssh(tmp_path, variant)

    assert (login["status"], login["evidence"]["outcome"]) == ("fail", "password-auth-disabled")
    assert login["evidence"]["auth_methods_offered"] == ["publickey"]
    assert "(it offers: publickey)" in login["summary"]
    assert "PasswordAuthentication yes" in login["remediation"]
    # Read once sshd has logged the end of preflight's own connection, so an attempt would be in the log by then.
    assert _password_attempts(sshd_log_after(variant, before, login["evidence"]["local_port"])) == []


@pytest.mark.parametrize("variant", [{"SSH_SESSION_UID": "1000"}], indirect=True, ids=["session-uid-1000"])
def test_login_whose_session_is_not_uid_0_fails_and_reports_the_uid(tmp_path: Path, variant: LabTarget) -> None:
    _, login = _check_ssh(tmp_path, variant)

    assert (login["status"], login["evidence"]["outcome"], login["evidence"]["uid"]) == ("fail", "not-root", 1000)
    assert login["evidence"]["auth_method"] == "password"
    assert "printed '1000', not 0" in login["summary"]


@pytest.fixture
def rotating_target() -> Iterator[LabTarget]:
    """A lab target of its own, because the test gives its sshd new host keys."""
    require_lab()
    with lab_target(ssh_ports=(2020,)) as target:
        yield target


def test_first_contact_records_the_key_and_a_rotated_key_is_refused_without_a_password(
    tmp_path: Path, rotating_target: LabTarget
) -> None:
    known_hosts = tmp_path / "known_hosts"
    _, first = _check_ssh(tmp_path, rotating_target)
    assert (first["status"], first["evidence"]["host_key_check"]) == ("pass", "recorded on first contact")
    assert first["evidence"]["known_hosts"] == str(known_hosts)
    found = subprocess.run(
        [need_tool("ssh-keygen", "openssh-client"), "-F", f"[{rotating_target.ip}]:2020", "-f", str(known_hosts)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found.returncode == 0
    assert first["evidence"]["host_key_type"] in found.stdout
    _, second = _check_ssh(tmp_path, rotating_target)
    assert (second["status"], second["evidence"]["host_key_check"]) == ("pass", "matches known_hosts")

    rotate_host_keys(rotating_target)
    before = sshd_log_lines(rotating_target)
    refused_run, refused = _check_ssh(tmp_path, rotating_target)

    assert refused_run.exit_code == 1
    assert (refused["status"], refused["evidence"]["outcome"]) == ("fail", "host-key-changed")
    assert refused["summary"].startswith("host key changed, possible interception")
    assert "the password was not sent" in refused["summary"]
    assert refused["evidence"]["host_key_fingerprint"] == served_host_key(rotating_target)
    assert refused["evidence"]["known_host_key_fingerprints"] == [first["evidence"]["host_key_fingerprint"]]
    # sshd's log of that run: the connection came and went, and not one authentication attempt was made.
    port = refused["evidence"]["local_port"]
    lines = sshd_log_after(rotating_target, before, port)
    # Closed or reset (preflight closes with sshd's next packet unread): either way before any authentication. The
    # port tells preflight's line from that of served_host_key's own connection above, which also ends in the window.
    ended = [f"Connection {how} by {_prober_address(rotating_target)} port {port} " for how in ("closed", "reset")]
    assert any(way in line for line in lines for way in ended), lines
    assert _password_attempts(lines) == []
    assert not [line for line in lines if "authenticating user root" in line]

    # The control: once the old key is removed, the same log records the password login.
    known_hosts.write_text("")
    before_control = sshd_log_lines(rotating_target)
    _, accepted = _check_ssh(tmp_path, rotating_target)
    assert (accepted["status"], accepted["evidence"]["host_key_check"]) == ("pass", "recorded on first contact")
    port = accepted["evidence"]["local_port"]
    control = sshd_lines_of(sshd_log_after(rotating_target, before_control, port, "Accepted password"), port)
    assert any("Accepted password for root" in line for line in control), control


def _prober_address(target: LabTarget) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((target.ip, 2020))
        return str(probe.getsockname()[0])


def test_inventory_pin_overrides_a_different_key_in_the_known_hosts_file(tmp_path: Path, pbx_target: LabTarget) -> None:
    impostor_key = paramiko.ECDSAKey.generate()
    (tmp_path / "known_hosts").write_text(
        f"[{pbx_target.ip}]:2020 {impostor_key.get_name()} {impostor_key.get_base64()}\n"
    )

    _, login = _check_ssh(tmp_path, pbx_target, ssh={"host_key": served_host_key(pbx_target)})

    assert (login["status"], login["evidence"]["host_key_check"]) == ("pass", "matches the inventory pin")


def test_strict_host_keys_sends_no_password_to_an_unknown_host(tmp_path: Path, pbx_target: LabTarget) -> None:
    before = sshd_log_lines(pbx_target)

    run, login = _check_ssh(tmp_path, pbx_target, extra_args=["--strict-host-keys"])

    assert run.exit_code == 1
    assert (login["status"], login["evidence"]["outcome"]) == ("fail", "host-key-unknown")
    fingerprint = served_host_key(pbx_target)
    assert login["evidence"]["host_key_fingerprint"] == fingerprint
    assert f"ssh.host_key: {fingerprint}" in login["remediation"]
    assert login["evidence"]["known_hosts_line"] in login["remediation"]
    assert (tmp_path / "known_hosts").read_text() == ""
    # Waits for the end of preflight's own connection (served_host_key's above ends in the same window).
    lines = sshd_log_after(pbx_target, before, login["evidence"]["local_port"])
    assert _password_attempts(lines) == []
    assert not [line for line in lines if "authenticating user root" in line]

    # Once accepted (recorded by a normal run), strict mode logs in.
    _check_ssh(tmp_path, pbx_target)
    _, strict_again = _check_ssh(tmp_path, pbx_target, extra_args=["--strict-host-keys"])
    assert (strict_again["status"], strict_again["evidence"]["host_key_check"]) == ("pass", "matches known_hosts")


def test_default_known_hosts_file_is_under_xdg_state_home(tmp_path: Path, pbx_target: LabTarget) -> None:
    # run_preflight sets XDG_STATE_HOME to tmp_path/state, so the user's own state is never touched.
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target), lab_secrets(pbx_target), ["--only", "ssh-root"])

    default_file = tmp_path / "state" / "preflight" / "known_hosts"
    assert run.check("lab", "ssh-root/2020")["evidence"]["known_hosts"] == str(default_file)
    assert f"[{pbx_target.ip}]:2020" in default_file.read_text()
    assert default_file.stat().st_mode & 0o777 == 0o600
    assert default_file.parent.stat().st_mode & 0o777 == 0o700
