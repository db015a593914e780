"""The container lab: real sshd and nginx targets started with testcontainers, and a way to run preflight on them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from preflight.demo import certificates
from tests.requirements import need

# Ryuk's image cannot be pulled here; containers are removed by the fixtures instead.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

LAB_IMAGE = os.environ.get("PREFLIGHT_LAB_IMAGE", "preflight-lab-target:latest")
REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "reports" / "report.schema.json").read_text())
READY_WAIT_SECONDS = 60.0


def new_secret(label: str) -> str:
    """A password unique to this test run, so a grep for it cannot match anything by chance."""
    return f"{label}-{secrets.token_urlsafe(12)}"


@dataclass
class LabTarget:
    ip: str
    container_id: str
    root_password: str
    gui_username: str
    gui_password: str

    def logs(self) -> str:
        completed = subprocess.run(["docker", "logs", self.container_id], capture_output=True, text=True, timeout=30)
        return completed.stdout + completed.stderr


def docker_unavailable_reason() -> str | None:
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.images.get(LAB_IMAGE)
    except Exception as exc:  # noqa: BLE001 - any failure here means the lab cannot run
        return f"lab unavailable ({type(exc).__name__}: {exc}); run lab/build.sh"
    return None


def require_lab() -> None:
    """Skip without Docker on a developer machine; in CI a missing lab is a failure, never a skip."""
    reason = docker_unavailable_reason()
    need(reason is None, reason or "")


@contextmanager
def lab_target(
    ssh_ports: Sequence[int] = (2020, 2222),
    *,
    extra_http_ports: Sequence[int] = (),
    tarpit_ports: Sequence[int] = (),
    tls_certificate: LabCertificate | None = None,
    env: Mapping[str, str] | None = None,
    wait_ports: Sequence[int] = (),
) -> Iterator[LabTarget]:
    """One lab container with sshd on `ssh_ports` and the GUI behind nginx on 80, 81 and 443.

    Hostile variants: nginx also answers plain HTTP on `extra_http_ports`, a tarpit that never speaks listens on
    `tarpit_ports`, and `tls_certificate` replaces the image's own certificate on 443. `env` sets any other
    variable that lab/target/entrypoint.sh reads; `wait_ports` are more TCP ports to wait for (a variant's servers).
    """
    from testcontainers.core.container import DockerContainer

    target_secrets = {
        "ROOT_PASSWORD": new_secret("root"),
        "GUI_USERNAME": "admin",
        "GUI_PASSWORD": new_secret("gui"),
        "SSH_PORTS": " ".join(str(port) for port in ssh_ports),
    }
    # A test may choose the passwords (to give them characters that every encoding changes).
    target_secrets |= {name: value for name, value in (env or {}).items() if name in target_secrets}
    settings = {
        "EXTRA_HTTP_PORTS": " ".join(str(port) for port in extra_http_ports),
        "TARPIT_PORTS": " ".join(str(port) for port in tarpit_ports),
    }
    if tls_certificate is not None:
        settings |= {"TLS_CERT_PEM": tls_certificate.cert_pem, "TLS_KEY_PEM": tls_certificate.key_pem}
    container = DockerContainer(LAB_IMAGE)
    for name, value in (target_secrets | settings | dict(env or {})).items():
        container.with_env(name, value)
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        ip = wrapped.attrs["NetworkSettings"]["IPAddress"]
        target = LabTarget(ip, wrapped.id, target_secrets["ROOT_PASSWORD"], "admin", target_secrets["GUI_PASSWORD"])
        https_port = () if (env or {}).get("GUI_HTTPS") == "off" else (443,)
        _wait_until_ready(target, ssh_ports, (*extra_http_ports, *tarpit_ports, *wait_ports), https_port)
        yield target
    finally:
        container.stop()


def _wait_until_ready(
    target: LabTarget, ssh_ports: Sequence[int], other_ports: Sequence[int] = (), https_port: Sequence[int] = (443,)
) -> None:
    """An open port is not a ready server: wait for each SSH banner, for nginx on 80 and 443 and for `other_ports`."""
    give_up_at = time.monotonic() + READY_WAIT_SECONDS
    waiting = {port: b"SSH-2.0-" for port in ssh_ports} | {port: b"" for port in (80, *https_port, *other_ports)}
    while waiting and time.monotonic() < give_up_at:
        for port, expected in list(waiting.items()):
            try:
                with socket.create_connection((target.ip, port), timeout=1) as sock:
                    if expected:
                        sock.settimeout(1)
                        if sock.recv(64).startswith(expected):
                            del waiting[port]
                    else:
                        del waiting[port]
            except OSError:
                pass
        if waiting:
            time.sleep(0.2)
    if waiting:
        raise RuntimeError(f"lab target {target.ip} not ready on {sorted(waiting)}:\n{target.logs()[-2000:]}")


@dataclass(frozen=True)
class LabCertificate:
    cert_pem: str
    key_pem: str


def make_certificate(
    common_name: str = "pbx.lab.invalid",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    dns_names: Sequence[str] = ("pbx.lab.invalid",),
    ip_addresses: Sequence[str] = (),
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[LabCertificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for a lab target, with its PEMs; made on the host, because the lab image's OpenSSL cannot
    backdate a certificate to make an expired one."""
    certificate, key = certificates.make_certificate(
        common_name,
        not_before=not_before,
        not_after=not_after,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        issuer=issuer,
    )
    return LabCertificate(*certificates.pem_pair(certificate, key)), certificate, key


def openssl_fingerprint(cert_pem: str, openssl: Sequence[str] = ("openssl",)) -> str:
    """The SHA-256 fingerprint exactly as `openssl x509 -noout -fingerprint -sha256` prints it, value only.

    `openssl` is the command to run: the host's by default, or one inside a lab container.
    """
    printed = subprocess.run(
        [*openssl, "x509", "-noout", "-fingerprint", "-sha256"],
        input=cert_pem,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return printed.strip().split("=", 1)[1]


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    report: dict[str, Any]
    html: str
    secrets: Sequence[str] = field(default_factory=list)

    def host(self, name: str) -> dict[str, Any]:
        return next(host for host in self.report["hosts"] if host["name"] == name)

    def check(self, host: str, check_id: str) -> dict[str, Any]:
        return next(check for check in self.host(host)["checks"] if check["id"] == check_id)

    def statuses(self, host: str) -> dict[str, str]:
        return {check["id"]: check["status"] for check in self.host(host)["checks"]}

    def outputs(self) -> dict[str, str]:
        return {"stdout": self.stdout, "stderr": self.stderr, "json": json.dumps(self.report), "html": self.html}


def write_inventory(folder: Path, text: str) -> Path:
    path = folder / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def lab_inventory(
    folder: Path,
    target: LabTarget,
    product: str = "pbxware",
    *,
    credentials: bool = True,
    require_public_ip: bool = False,
    ssh: Mapping[str, Any] | None = None,
) -> Path:
    """An inventory of one host `lab` aimed at `target`; secrets are ${GUI_PASSWORD} and ${ROOT_PASSWORD}."""
    host: dict[str, Any] = {
        "name": "lab",
        "product": product,
        "address": target.ip,
        "require_public_ip": require_public_ip,
    }
    if credentials:
        host["gui"] = {"username": target.gui_username, "password": "${GUI_PASSWORD}"}
        host["ssh"] = {"root_password": "${ROOT_PASSWORD}", **(ssh or {})}
    return write_inventory(folder, yaml.safe_dump({"hosts": [host]}, sort_keys=False))


def lab_secrets(target: LabTarget, **overrides: str) -> dict[str, str]:
    """The environment that `lab_inventory` refers to, with any variable replaced or added."""
    return {"ROOT_PASSWORD": target.root_password, "GUI_PASSWORD": target.gui_password, **overrides}


def run_preflight(
    folder: Path,
    inventory: Path,
    environ: Mapping[str, str],
    extra_args: Sequence[str] = (),
    command: Sequence[str] = (sys.executable, "-m", "preflight"),
) -> Run:
    """Run `preflight check` as a user would; check the report against the schema and every output for secrets."""
    json_path, html_path = folder / "report.json", folder / "report.html"
    completed = subprocess.run(
        [*command, "check", str(inventory), "--json", str(json_path), "--html", str(html_path), *extra_args],
        capture_output=True,
        text=True,
        timeout=300,
        # A run never records host keys in the user's own state: its default known_hosts file lives in `folder`.
        env={**os.environ, "XDG_STATE_HOME": str(folder / "state"), **environ},
        cwd=folder,
    )
    assert "Traceback" not in completed.stderr, completed.stderr
    report = json.loads(json_path.read_text())
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(report)
    run = Run(
        completed.returncode, completed.stdout, completed.stderr, report, html_path.read_text(), list(environ.values())
    )
    assert_no_secrets(run.outputs(), run.secrets)
    assert_actionable(report)
    return run


def assert_actionable(report: Mapping[str, Any]) -> None:
    """Every result that is not a pass says what to do, and names its port when it is about one."""
    for host in report["hosts"]:
        for check in host["checks"]:
            if check["status"] == "pass":
                continue
            where = f"{host['name']} {check['id']}"
            assert check["remediation"].strip(), f"{where} has no remediation"
            if check.get("port") is not None:
                assert str(check["port"]) in check["remediation"], (
                    f"{where} ({check['status']}): remediation does not name the port: {check['remediation']}"
                )


def secret_forms(secret_values: Sequence[str], usernames: Sequence[str] = ()) -> list[str]:
    """Each secret as it may travel: itself, URL-encoded (a form post: quote_plus; a URL: quote), base64 of
    `username:secret` (HTTP Basic, in UTF-8 and in the Latin-1 that requests uses when it can) and of itself alone."""
    import base64
    from urllib.parse import quote, quote_plus

    def b64(text: str, encoding: str = "utf-8") -> list[str]:
        try:
            return [base64.b64encode(text.encode(encoding)).decode()]
        except UnicodeEncodeError:
            return []

    forms = []
    for secret in secret_values:
        forms += [secret, quote(secret, safe=""), quote(secret), quote_plus(secret), *b64(secret)]
        for user in usernames:
            forms += [*b64(f"{user}:{secret}"), *b64(f"{user}:{secret}", "latin-1")]
    return sorted(set(forms))


def assert_no_secrets(outputs: Mapping[str, str], secret_values: Sequence[str]) -> None:
    for where, text in outputs.items():
        for secret in secret_values:
            assert secret not in text, f"a secret leaked into {where}"


def served_host_key(target: LabTarget, port: int = 2020) -> str:
    """The fingerprint of the host key the lab sshd on `port` presents now (no login is attempted)."""
    import paramiko

    with socket.create_connection((target.ip, port), timeout=10) as sock, paramiko.Transport(sock) as transport:
        transport.start_client(timeout=10)
        blob = transport.get_remote_server_key().asbytes()
    from preflight.known_hosts import fingerprint_of

    return fingerprint_of(blob)


def rotate_host_keys(target: LabTarget, ports: Sequence[int] = (2020,)) -> None:
    """Give the running sshd new host keys, as a reinstall (or an impostor) would, and wait until it serves them."""
    before = {port: served_host_key(target, port) for port in ports}
    regenerate = "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && kill -HUP 1"
    subprocess.run(["docker", "exec", target.container_id, "sh", "-c", regenerate], check=True, timeout=30)
    give_up_at = time.monotonic() + READY_WAIT_SECONDS
    waiting = set(ports)
    while waiting and time.monotonic() < give_up_at:
        for port in list(waiting):
            # sshd re-executes itself on SIGHUP, so a probe in between may fail: try again.
            with contextlib.suppress(Exception):
                if served_host_key(target, port) != before[port]:
                    waiting.discard(port)
        if waiting:
            time.sleep(0.2)
    if waiting:
        raise RuntimeError(f"lab target {target.ip} still serves its old host keys on {sorted(waiting)}")


def sshd_log_lines(target: LabTarget) -> list[str]:
    """The lab container's stderr, where `sshd -e` logs every login attempt, one line per entry."""
    completed = subprocess.run(["docker", "logs", target.container_id], capture_output=True, text=True, timeout=30)
    return completed.stderr.splitlines()


# The lines sshd writes when a connection ends, whichever side ends it and however far the login got.
SSHD_CONNECTION_END = ("Connection closed by", "Disconnected from", "Received disconnect from", "Connection reset by")


def sshd_log_after(target: LabTarget, before: Sequence[str], port: int, marker: str | None = None) -> list[str]:
    """The sshd log lines written since `before` was read, once sshd has logged `marker` (by default, the end) of
    the connection that came from client port `port`.

    sshd names the client's port in its lines ("from IP port N"), and preflight puts the port it connected from in
    the evidence (`local_port`): waiting for that connection's own line, not for any line, means everything the run
    caused is in the log by then, so a later "no such line" means something.
    """
    words = (marker,) if marker is not None else SSHD_CONNECTION_END
    give_up_at = time.monotonic() + 15
    while True:
        lines = sshd_log_lines(target)[len(before) :]
        if any(any(word in line for word in words) for line in sshd_lines_of(lines, port)):
            return lines
        if time.monotonic() > give_up_at:
            raise AssertionError(f"sshd logged no {words} for client port {port} within 15 s; its log: {lines[-20:]}")
        time.sleep(0.2)


def sshd_lines_of(lines: Sequence[str], port: int) -> list[str]:
    """The lines about the connection from client port `port` (sshd writes "... from IP port N ...")."""
    about = re.compile(rf"\bport {port}\b")
    return [line for line in lines if about.search(line)]
