"""service/<port> end to end against lab containers: real OpenSSH and nginx, and a hostile target."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.deadlines import within_deadline
from tests.lab import (
    LabCertificate,
    LabTarget,
    Run,
    lab_inventory,
    lab_secrets,
    lab_target,
    make_certificate,
    openssl_fingerprint,
    require_lab,
    run_preflight,
)

HOSTILE_TIMEOUT_SECONDS = 3
# What a check may take beyond its deadline: closing sockets and threads.
SLACK_SECONDS = 1.0


def container_fingerprint(target: LabTarget, path: str = "/etc/preflight-lab/tls.crt") -> str:
    """The certificate's fingerprint as the container's own openssl prints it."""
    pem = subprocess.run(
        ["docker", "exec", target.container_id, "cat", path], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return openssl_fingerprint(pem, ("docker", "exec", "-i", target.container_id, "openssl"))


def test_ready_pbxware_target_identifies_every_service(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target), lab_secrets(pbx_target))

    ssh = run.check("lab", "service/2020")
    assert (ssh["status"], ssh["evidence"]["reason"]) == ("pass", "ssh-banner")
    assert ssh["evidence"]["banner"].startswith("SSH-2.0-OpenSSH_")
    assert ssh["summary"] == f"SSH server on TCP 2020: {ssh['evidence']['banner']}"
    http = run.check("lab", "service/80")
    assert (http["status"], http["evidence"]["reason"]) == ("pass", "http-response")
    assert http["evidence"]["server"].startswith("nginx")
    assert http["evidence"]["status_code"] == 200
    # The Setup Wizard's port may be either; the lab's answers HTTPS, and its start page redirects to the login.
    wizard = run.check("lab", "service/81")
    assert (wizard["status"], wizard["evidence"]["reason"], wizard["evidence"]["scheme"]) == (
        "pass",
        "https-response",
        "https",
    )
    assert (wizard["evidence"]["status_code"], wizard["evidence"]["location"]) == (302, "/index.php?section=login")
    assert wizard["evidence"]["certificate"]["fingerprint_sha256"] == container_fingerprint(pbx_target)
    https = run.check("lab", "service/443")
    assert (https["status"], https["evidence"]["reason"]) == ("pass", "https-response")
    certificate = https["evidence"]["certificate"]
    assert certificate["fingerprint_sha256"] == container_fingerprint(pbx_target)
    assert (certificate["subject"], certificate["self_signed"]) == ("CN=pbx.lab.invalid", True)
    assert https["evidence"]["server"].startswith("nginx")
    assert run.statuses("lab")["ssh-root/2020"] == "pass"
    assert run.statuses("lab")["gui-login/443"] == "pass"
    assert "SSH-2.0-OpenSSH_" in run.html


def test_serverware_target_identifies_both_ssh_ports(tmp_path: Path, serverware_target: LabTarget) -> None:
    inventory = lab_inventory(tmp_path, serverware_target, "serverware", credentials=False)
    run = run_preflight(tmp_path, inventory, {}, ["--only", "tcp,service"])

    assert run.exit_code == 0, run.stdout
    for port in (2020, 2222):
        assert run.check("lab", f"service/{port}")["evidence"]["banner"].startswith("SSH-2.0-OpenSSH_")


@dataclass(frozen=True)
class HostileRun:
    target: LabTarget
    certificate: LabCertificate
    expired_on: datetime
    run: Run


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRun]:
    """One SERVERware run against a target with nginx on 2020, a tarpit on 2222 and an expired certificate."""
    require_lab()
    now = datetime.now(UTC).replace(microsecond=0)
    expired_on = now - timedelta(days=30)
    certificate, _, _ = make_certificate(not_before=now - timedelta(days=400), not_after=expired_on)
    with lab_target(
        ssh_ports=(), extra_http_ports=(2020,), tarpit_ports=(2222,), tls_certificate=certificate
    ) as target:
        folder = tmp_path_factory.mktemp("hostile")
        run = run_preflight(
            folder,
            lab_inventory(folder, target, "serverware"),
            lab_secrets(target),
            ["--timeout", str(HOSTILE_TIMEOUT_SECONDS)],
        )
        yield HostileRun(target, certificate, expired_on, run)


def test_http_on_the_ssh_port_is_reported_as_not_ssh(hostile_run: HostileRun) -> None:
    run = hostile_run.run
    service = run.check("lab", "service/2020")

    assert run.statuses("lab")["tcp/2020"] == "pass"
    assert (service["status"], service["evidence"]["reason"]) == ("fail", "not-ssh")
    assert service["summary"].startswith("port open but not SSH: HTTP/1.1 400 Bad Request")
    assert "Server: nginx" in service["evidence"]["heard"]
    login = run.check("lab", "ssh-root/2020")
    assert (login["status"], login["evidence"]["needs"]) == ("skipped", "service/2020")
    assert run.exit_code == 1


@pytest.mark.deadline
def test_tarpit_resolves_within_its_deadline_and_the_login_is_not_attempted(hostile_run: HostileRun) -> None:
    run = hostile_run.run
    service = run.check("lab", "service/2222")

    assert run.statuses("lab")["tcp/2222"] == "pass"
    assert (service["status"], service["evidence"]["reason"]) == ("fail", "silent")
    assert service["summary"].startswith("port open but silent: no SSH banner within")
    within_deadline(service["duration_ms"] / 1000, HOSTILE_TIMEOUT_SECONDS + SLACK_SECONDS)
    login = run.check("lab", "ssh-root/2222")
    assert (login["status"], login["evidence"]["needs"]) == ("skipped", "service/2222")


def test_expired_certificate_is_a_warning_with_the_date(hostile_run: HostileRun) -> None:
    https = hostile_run.run.check("lab", "service/443")

    assert (https["status"], https["evidence"]["reason"]) == ("warn", "certificate-expired")
    expired_on = hostile_run.expired_on.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"expired on {expired_on} (30 days ago)" in https["summary"]
    certificate = https["evidence"]["certificate"]
    assert certificate["days_left"] == -30
    assert certificate["fingerprint_sha256"] == openssl_fingerprint(hostile_run.certificate.cert_pem)
    assert certificate["fingerprint_sha256"] == container_fingerprint(hostile_run.target)
    assert https["remediation"]


def test_expired_certificate_does_not_stop_the_gui_login(hostile_run: HostileRun) -> None:
    """A warning is not a failure: support can still log in, and the report must say whether it could."""
    assert hostile_run.run.statuses("lab")["gui-login/443"] == "pass"
