"""ssh-root with an OpenSSH user certificate (ssh.certificate_file) against real sshd trusting a test CA.

The lab target runs sshd with `TrustedUserCAKeys` set to a CA made here by ssh-keygen, and keys only
(SSH_AUTH=publickey): root has no authorized_keys, so only a certificate from that CA gets in. sshd's own log
proves what happened on its side.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from preflight.ssh_certificate import read_user_certificate
from tests.lab import (
    LabTarget,
    Run,
    lab_target,
    require_lab,
    run_preflight,
    sshd_lines_of,
    sshd_log_after,
    sshd_log_lines,
    write_inventory,
)
from tests.requirements import need_tool


@dataclass(frozen=True)
class Keys:
    folder: Path
    ca: Path
    user: Path


def _ssh_keygen(*args: str) -> None:
    need_tool("ssh-keygen", "openssh-client")
    subprocess.run(["ssh-keygen", "-q", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("ssh-ca")
    _ssh_keygen("-t", "ed25519", "-N", "", "-C", "preflight test CA", "-f", str(folder / "ca"))
    _ssh_keygen("-t", "ed25519", "-N", "", "-C", "support", "-f", str(folder / "id_support"))
    return Keys(folder, folder / "ca", folder / "id_support")


def certificate(keys: Keys, name: str, *, principals: str = "root", validity: str = "-5m:+1h") -> Path:
    """A user certificate for the support key, signed by the test CA; its path."""
    folder = keys.folder / name
    folder.mkdir()
    public = folder / "id_support.pub"
    shutil.copy(keys.user.with_suffix(".pub"), public)
    _ssh_keygen("-s", str(keys.ca), "-I", f"ticket-{name}", "-z", "42", "-n", principals, "-V", validity, str(public))
    return folder / "id_support-cert.pub"


@pytest.fixture(scope="module")
def ca_target(keys: Keys) -> Iterator[LabTarget]:
    require_lab()
    ca_line = keys.ca.with_suffix(".pub").read_text().strip()
    with lab_target(ssh_ports=(2020,), env={"SSH_AUTH": "publickey", "SSH_TRUSTED_USER_CA": ca_line}) as target:
        yield target


def _check(tmp_path: Path, target: LabTarget, keys: Keys, cert: Path) -> tuple[Run, dict[str, object]]:
    host = {
        "name": "lab",
        "product": "pbxware",
        "address": target.ip,
        "require_public_ip": False,
        "ssh": {"key_file": str(keys.user), "certificate_file": str(cert)},
    }
    inventory = write_inventory(tmp_path, yaml.safe_dump({"hosts": [host]}))
    run = run_preflight(tmp_path, inventory, {}, ["--only", "ssh-root", "--known-hosts", str(tmp_path / "known_hosts")])
    return run, run.check("lab", "ssh-root/2020")


def test_valid_certificate_logs_in_as_root_and_reports_its_id_principals_and_validity(
    tmp_path: Path, ca_target: LabTarget, keys: Keys
) -> None:
    before = sshd_log_lines(ca_target)
    cert = certificate(keys, "valid")

    run, login = _check(tmp_path, ca_target, keys, cert)

    assert run.exit_code == 0, login
    evidence = login["evidence"]
    assert (login["status"], evidence["outcome"], evidence["auth_method"], evidence["uid"]) == (
        "pass",
        "root-login",
        "publickey",
        0,
    )
    shown = evidence["certificate"]
    assert (shown["key_id"], shown["principals"], shown["serial"], shown["valid_now"]) == (
        "ticket-valid",
        ["root"],
        42,
        True,
    )
    assert shown["type"] == "ssh-ed25519-cert-v01@openssh.com"
    read = read_user_certificate(cert)
    assert shown["valid_before"] == read.valid_before.strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[union-attr]
    ca_fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(keys.ca.with_suffix(".pub"))], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert shown["signed_by"] == ca_fingerprint
    port = evidence["local_port"]
    lines = sshd_lines_of(sshd_log_after(ca_target, before, port, "Accepted publickey"), port)
    accepted = [line for line in lines if "Accepted" in line]
    assert accepted and "ID ticket-valid (serial 42)" in accepted[0] and "CERT" in accepted[0]


@pytest.mark.parametrize(
    ("validity", "outcome", "words"),
    [
        ("20200101:20200102", "certificate-expired", "expired on 2020-01-02T00:00:00Z"),
        ("+1d:+2d", "certificate-not-yet-valid", "is not valid until"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_certificate_outside_its_validity_fails_naming_the_dates_and_never_connects(
    tmp_path: Path, ca_target: LabTarget, keys: Keys, validity: str, outcome: str, words: str
) -> None:
    before = sshd_log_lines(ca_target)
    cert = certificate(keys, outcome, validity=validity)

    run, login = _check(tmp_path, ca_target, keys, cert)

    assert run.exit_code == 1
    evidence = login["evidence"]
    assert (login["status"], evidence["outcome"]) == ("fail", outcome)
    assert words in login["summary"] and "nothing was sent" in login["summary"]
    assert evidence["certificate"]["valid_now"] is False
    assert "ssh.certificate_file" in login["remediation"]
    # Judged before connecting: no banner was read, and sshd saw nothing.
    assert "banner" not in evidence and "host_key_fingerprint" not in evidence
    assert not [line for line in sshd_log_lines(ca_target)[len(before) :] if "root" in line]


def test_certificate_for_another_principal_is_refused_and_says_so(
    tmp_path: Path, ca_target: LabTarget, keys: Keys
) -> None:
    before = sshd_log_lines(ca_target)
    cert = certificate(keys, "wrong-principal", principals="support")

    run, login = _check(tmp_path, ca_target, keys, cert)

    assert run.exit_code == 1
    assert (login["status"], login["evidence"]["outcome"]) == ("fail", "certificate-refused")
    assert "its principals (support) do not include root" in login["summary"]
    assert "-n root" in login["remediation"]
    # sshd's "not a listed principal" line names no port; it comes before the end of the connection, which does.
    refused = sshd_log_after(ca_target, before, login["evidence"]["local_port"])
    assert any("name is not a listed principal" in line for line in refused), refused


def test_certificate_of_another_key_is_refused_before_connecting(
    tmp_path: Path, ca_target: LabTarget, keys: Keys
) -> None:
    other = keys.folder / "other"
    other.mkdir()
    _ssh_keygen("-t", "ed25519", "-N", "", "-f", str(other / "id_other"))
    _ssh_keygen("-s", str(keys.ca), "-I", "other", "-n", "root", str(other / "id_other.pub"))

    _, login = _check(tmp_path, ca_target, keys, other / "id_other-cert.pub")

    assert (login["status"], login["evidence"]["outcome"]) == ("fail", "certificate-unusable")
    assert "it certifies another key than ssh.key_file" in login["summary"]
    assert "banner" not in login["evidence"]


def test_certificate_reading_knows_forever_and_refuses_a_plain_key(keys: Keys) -> None:
    forever = certificate(keys, "forever", validity="always:forever")
    read = read_user_certificate(forever)
    assert (read.valid_after, read.valid_before) == (None, None)
    assert read.evidence(datetime.now(UTC))["valid_before"] == "forever"
    with pytest.raises(ValueError, match="not a certificate"):
        read_user_certificate(keys.user.with_suffix(".pub"))
