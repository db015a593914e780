"""`preflight check` end to end against real sshd and nginx in lab containers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab import (
    REPO,
    LabTarget,
    lab_inventory,
    lab_secrets,
    new_secret,
    require_lab,
    run_preflight,
    write_inventory,
)
from tests.requirements import need_tool


def test_ready_pbxware_target_passes_every_check_and_warns_on_private_address(
    tmp_path: Path, pbx_target: LabTarget
) -> None:
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target), lab_secrets(pbx_target))

    assert run.exit_code == 0, run.stderr
    assert run.statuses("lab") == {
        "public-ip": "warn",
        "vantage": "warn",
        "tcp/80": "pass",
        "tcp/81": "pass",
        "tcp/443": "pass",
        "tcp/2020": "pass",
        "service/80": "pass",
        "service/81": "pass",
        "service/443": "pass",
        "service/2020": "pass",
        "ssh-root/2020": "pass",
        "gui-login/443": "pass",
        "setup-wizard-login/81": "pass",
    }
    assert run.host("lab")["ready"] is True
    assert run.report["summary"] == {"hosts": 1, "ready": 1, "not_ready": 0}
    assert run.check("lab", "ssh-root/2020")["evidence"]["uid"] == 0
    assert run.check("lab", "tcp/2020")["evidence"]["reason"] == "syn-ack"
    assert run.check("lab", "gui-login/443")["evidence"]["after_login_path"] == "/dashboard"
    assert f"lab (pbxware, {pbx_target.ip}): READY" in run.stdout
    assert "NOT READY" not in run.html


def test_ssh_host_key_fingerprint_matches_ssh_keygen(tmp_path: Path, pbx_target: LabTarget) -> None:
    need_tool("ssh-keyscan", "openssh-client")
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target), lab_secrets(pbx_target), ["--only", "ssh-root"])
    evidence = run.check("lab", "ssh-root/2020")["evidence"]
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", "2020", "-t", evidence["host_key_type"], pbx_target.ip],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    printed = subprocess.run(
        ["ssh-keygen", "-lf", "-"], input=scanned, capture_output=True, text=True, timeout=30
    ).stdout

    assert printed.split()[1] == evidence["host_key_fingerprint"]


def test_serverware_with_nothing_on_2222_is_not_ready(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target, "serverware"), lab_secrets(pbx_target))

    assert run.exit_code == 1
    tcp_2222 = run.check("lab", "tcp/2222")
    assert (tcp_2222["status"], tcp_2222["evidence"]["state"], tcp_2222["evidence"]["reason"]) == (
        "fail",
        "closed",
        "reset",
    )
    assert "Forward TCP 2222" in tcp_2222["remediation"]
    ssh_2222 = run.check("lab", "ssh-root/2222")
    assert ssh_2222["status"] == "skipped"
    assert "tcp/2222 is closed" in ssh_2222["summary"]
    assert run.check("lab", "ssh-root/2020")["status"] == "pass"
    assert run.report["summary"] == {"hosts": 1, "ready": 0, "not_ready": 1}
    assert "NOT READY" in run.html


def test_wrong_root_password_is_refused_and_the_run_still_finishes(tmp_path: Path, pbx_target: LabTarget) -> None:
    inventory = write_inventory(
        tmp_path,
        f"""
        defaults:
          require_public_ip: false
          gui: {{username: admin, password: "${{GUI_PASSWORD}}"}}
        hosts:
          - name: wrong-root
            product: pbxware
            address: {pbx_target.ip}
            ssh: {{root_password: "${{WRONG_ROOT_PASSWORD}}"}}
          - name: right-root
            product: pbxware
            address: {pbx_target.ip}
            ssh: {{root_password: "${{ROOT_PASSWORD}}"}}
        """,
    )
    run = run_preflight(tmp_path, inventory, lab_secrets(pbx_target, WRONG_ROOT_PASSWORD=new_secret("wrong-root")))

    assert run.exit_code == 1
    refused = run.check("wrong-root", "ssh-root/2020")
    assert refused["status"] == "fail"
    assert "password refused" in refused["summary"]
    assert refused["remediation"]
    assert run.statuses("right-root")["ssh-root/2020"] == "pass"
    assert run.report["summary"] == {"hosts": 2, "ready": 1, "not_ready": 1}


def test_wrong_gui_password_fails_gui_login(tmp_path: Path, pbx_target: LabTarget) -> None:
    secrets = lab_secrets(pbx_target, GUI_PASSWORD=new_secret("wrong-gui"), RIGHT_GUI_PASSWORD=pbx_target.gui_password)
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target), secrets)

    assert run.exit_code == 1
    gui = run.check("lab", "gui-login/443")
    assert gui["status"] == "fail"
    assert "login form came back" in gui["summary"]
    assert run.check("lab", "ssh-root/2020")["status"] == "pass"


def test_missing_credentials_fail_as_not_provided(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target, credentials=False), {})

    assert run.exit_code == 1
    assert run.check("lab", "ssh-root/2020")["status"] == "fail"
    assert "not provided" in run.check("lab", "ssh-root/2020")["summary"]
    assert "not provided" in run.check("lab", "gui-login/443")["summary"]


def test_only_public_ip_and_tcp_needs_no_passwords(tmp_path: Path, pbx_target: LabTarget) -> None:
    inventory = lab_inventory(tmp_path, pbx_target, credentials=False)
    run = run_preflight(tmp_path, inventory, {}, ["--only", "public-ip,tcp"])

    assert run.exit_code == 0
    assert set(run.statuses("lab")) == {"public-ip", "tcp/80", "tcp/81", "tcp/443", "tcp/2020"}


def test_private_address_fails_when_a_public_ip_is_required(tmp_path: Path, pbx_target: LabTarget) -> None:
    inventory = lab_inventory(tmp_path, pbx_target, credentials=False, require_public_ip=True)
    run = run_preflight(tmp_path, inventory, {}, ["--only", "public-ip"])

    assert run.exit_code == 1
    public_ip = run.check("lab", "public-ip")
    assert public_ip["status"] == "fail"
    assert "private (RFC 1918)" in public_ip["summary"]


def test_host_option_checks_only_the_named_hosts(tmp_path: Path, pbx_target: LabTarget) -> None:
    inventory = write_inventory(
        tmp_path,
        f"""
        defaults:
          require_public_ip: false
          product: pbxware
        hosts:
          - {{name: first, address: {pbx_target.ip}}}
          - {{name: second, address: {pbx_target.ip}}}
        """,
    )
    run = run_preflight(tmp_path, inventory, {}, ["--only", "tcp", "--host", "second"])

    assert [host["name"] for host in run.report["hosts"]] == ["second"]


def test_pinned_host_key_mismatch_refuses_to_send_the_password(tmp_path: Path, serverware_target: LabTarget) -> None:
    pinned = lab_inventory(tmp_path, serverware_target, "serverware", ssh={"host_key": "SHA256:" + "A" * 43})
    logs_before = serverware_target.logs()

    run = run_preflight(tmp_path, pinned, lab_secrets(serverware_target), ["--only", "tcp,ssh-root"])

    ssh_2020 = run.check("lab", "ssh-root/2020")
    assert ssh_2020["status"] == "fail"
    assert "does not match the pinned key" in ssh_2020["summary"]
    logs_after_pinned_run = serverware_target.logs()
    assert "password for root" not in logs_after_pinned_run[len(logs_before) :]

    # The same log does record a password login when the key matches, so its silence above means something.
    unpinned = lab_inventory(tmp_path, serverware_target, "serverware")
    run_preflight(tmp_path, unpinned, lab_secrets(serverware_target), ["--only", "tcp,ssh-root"])
    assert "Accepted password for root" in serverware_target.logs()[len(logs_after_pinned_run) :]


def test_serverware_with_both_ssh_ports_is_ready(tmp_path: Path, serverware_target: LabTarget) -> None:
    run = run_preflight(
        tmp_path, lab_inventory(tmp_path, serverware_target, "serverware"), lab_secrets(serverware_target)
    )

    assert run.exit_code == 0
    assert run.statuses("lab")["ssh-root/2222"] == "pass"
    assert run.statuses("lab")["tcp/2222"] == "pass"


def test_per_port_credentials_are_used_for_that_port(tmp_path: Path, serverware_target: LabTarget) -> None:
    per_port = {"per_port": {2222: {"root_password": "${OTHER_PASSWORD}"}}}
    inventory = lab_inventory(tmp_path, serverware_target, "serverware", ssh=per_port)
    secrets = lab_secrets(serverware_target, OTHER_PASSWORD=new_secret("other"))

    run = run_preflight(tmp_path, inventory, secrets, ["--only", "tcp,ssh-root"])

    assert run.statuses("lab")["ssh-root/2020"] == "pass"
    assert run.statuses("lab")["ssh-root/2222"] == "fail"


@pytest.fixture
def authorized_key(tmp_path: Path, serverware_target: LabTarget) -> tuple[Path, str]:
    """A passphrase-protected Ed25519 key in tmp_path, authorized for root on the SERVERware lab target."""
    passphrase = new_secret("passphrase")
    key = tmp_path / "support_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "preflight-test", "-f", str(key)],
        check=True,
        timeout=30,
    )
    authorize = "mkdir -p -m 700 /root/.ssh && cat >> /root/.ssh/authorized_keys"
    subprocess.run(
        ["docker", "exec", "-i", serverware_target.container_id, "sh", "-c", authorize],
        input=key.with_suffix(".pub").read_bytes(),
        check=True,
        timeout=30,
    )
    return key, passphrase


def _key_inventory(tmp_path: Path, target: LabTarget, key: Path) -> Path:
    inventory = lab_inventory(tmp_path, target, "serverware", credentials=False)
    key_settings = f"  ssh:\n    key_file: {key.name}\n    key_passphrase: ${{KEY_PASSPHRASE}}\n"
    inventory.write_text(inventory.read_text() + key_settings)
    return inventory


def test_root_login_with_a_passphrase_protected_key_file(
    tmp_path: Path, serverware_target: LabTarget, authorized_key: tuple[Path, str]
) -> None:
    key, passphrase = authorized_key
    inventory = _key_inventory(tmp_path, serverware_target, key)

    run = run_preflight(tmp_path, inventory, {"KEY_PASSPHRASE": passphrase}, ["--only", "tcp,ssh-root"])

    for port in (2020, 2222):
        login = run.check("lab", f"ssh-root/{port}")
        assert (login["status"], login["evidence"]["auth_method"], login["evidence"]["uid"]) == (
            "pass",
            "publickey",
            0,
        )


def test_wrong_key_passphrase_fails_with_its_own_summary(
    tmp_path: Path, serverware_target: LabTarget, authorized_key: tuple[Path, str]
) -> None:
    key, _ = authorized_key
    inventory = _key_inventory(tmp_path, serverware_target, key)

    run = run_preflight(tmp_path, inventory, {"KEY_PASSPHRASE": new_secret("wrong")}, ["--only", "tcp,ssh-root"])

    login = run.check("lab", "ssh-root/2020")
    assert login["status"] == "fail"
    assert "could not be decrypted (wrong key_passphrase?)" in login["summary"]


def test_the_readme_lab_command_is_ready_twice_in_a_row(tmp_path: Path) -> None:
    """`bash lab/try.sh`, as the README gives it; a second run meets a new container with new host keys."""
    require_lab()
    environ = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for _ in range(2):
        completed = subprocess.run(
            ["bash", str(REPO / "lab" / "try.sh")],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=environ,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["summary"] == {"hosts": 1, "ready": 1, "not_ready": 0}
