"""service/<port> against real servers on loopback: SSH banners, HTTP answers, TLS and certificates."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.probes import gui_login, service, ssh_root
from preflight.profiles import RequiredPort, load_profiles
from preflight.target import Target
from preflight.web.certificate_evidence import certificate_evidence
from tests.deadlines import within_deadline
from tests.lab import LabCertificate, make_certificate, openssl_fingerprint
from tests.loopback import loopback_server

PROFILES = load_profiles()
DEADLINE_SECONDS = 2.0
# What a probe may take beyond its deadline: closing sockets and threads.
SLACK_SECONDS = 1.0
# How long a stand-in server keeps any one behaviour up; past the probe's deadline, never forever.
SERVER_LIFETIME_SECONDS = DEADLINE_SECONDS + SLACK_SECONDS
OPENSSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
NGINX_400 = (
    b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)

Behaviour = Callable[[socket.socket], None]


class StandIn:
    """A one-behaviour TCP server on 127.0.0.1 that records what each client sent."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.received: list[bytes] = []
        self.port = 0

    def read_until(self, connection: socket.socket, end: bytes, limit: int = 65536) -> bytes:
        data = b""
        while end not in data and len(data) < limit:
            chunk = connection.recv(4096)
            if not chunk:
                break
            data += chunk
        self.received.append(data)
        return data


@contextlib.contextmanager
def serving(behaviour: Callable[[StandIn, socket.socket], None]) -> Iterator[StandIn]:
    stand_in = StandIn(lambda connection: behaviour(stand_in, connection))
    with loopback_server(stand_in.behaviour, SERVER_LIFETIME_SECONDS) as port:
        stand_in.port = port
        yield stand_in


def service_target(port: int, kind: str) -> Target:
    """A service/<port> target on loopback whose profile says `port` runs `kind` (ssh, http or https)."""
    host = Host.model_validate(
        {"name": "loopback", "product": "pbxware", "address": "127.0.0.1"},
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )
    required = RequiredPort(port=port, service=kind, purpose="stand-in")  # type: ignore[arg-type]
    profile = PROFILES["pbxware"].model_copy(update={"ports": (required,)})
    return Target(f"service/{port}", "r", host, profile, port=port, ip="127.0.0.1", addresses=("127.0.0.1",))


def probe(stand_in: StandIn, kind: str) -> tuple[Finding, float]:
    started = time.monotonic()
    finding = service.run(service_target(stand_in.port, kind), Deadline(DEADLINE_SECONDS))
    elapsed = time.monotonic() - started
    if finding.status is not Status.PASS:
        assert finding.remediation, finding
    return finding, elapsed


def _sleep_out(connection: socket.socket) -> None:
    time.sleep(SERVER_LIFETIME_SECONDS)


def _reset(connection: socket.socket) -> None:
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# The plan


def test_plan_identifies_every_required_port_after_its_tcp_check() -> None:
    host = Host.model_validate(
        {"name": "x", "product": "serverware", "address": "192.0.2.1"},
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )
    profile = PROFILES["serverware"]

    targets = service.plan(host, profile)

    assert [(target.check_id, target.needs) for target in targets] == [
        (f"service/{port}", f"tcp/{port}") for port in (80, 81, 443, 2020, 2222)
    ]
    assert "SSH server" in targets[3].requirement
    assert [target.needs for target in ssh_root.plan(host, profile)] == ["service/2020", "service/2222"]
    assert [target.needs for target in gui_login.plan(host, profile)] == ["service/443"]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"HTTP/1.1 400 Bad Request", "HTTP/1.1 400 Bad Request"),
        (b"\x00junk\r\n\x1b[31m\\", "\\x00junk\\r\\n\\x1b[31m\\\\"),
        (b"\xff\xfe caf\xc3\xa9", "\\xff\\xfe caf\\xc3\\xa9"),
        (b"A" * 100, "A" * 77 + "..."),
    ],
    ids=["plain", "control-bytes", "non-ascii", "truncated"],
)
def test_printable_escapes_and_truncates_what_was_heard(data: bytes, text: str) -> None:
    assert service.printable(data) == text


# SSH ports


def test_ssh_banner_passes_and_our_identification_goes_first() -> None:
    def server_waits_for_the_client(stand_in: StandIn, connection: socket.socket) -> None:
        stand_in.read_until(connection, b"\n")
        connection.sendall(OPENSSH_BANNER + b"\r\n")
        connection.recv(64)

    with serving(server_waits_for_the_client) as stand_in:
        finding, _ = probe(stand_in, "ssh")

    assert finding.status is Status.PASS
    assert finding.summary == f"SSH server on TCP {stand_in.port}: {OPENSSH_BANNER.decode()}"
    assert finding.evidence["reason"] == "ssh-banner"
    assert finding.evidence["banner"] == OPENSSH_BANNER.decode()
    assert (finding.evidence["protocol_version"], finding.evidence["software_version"]) == ("2.0", "OpenSSH_9.2p1")
    assert stand_in.received == [b"SSH-2.0-preflight_0.1.0\r\n"]


@pytest.mark.parametrize(
    ("sent", "status", "reason"),
    [
        (b"SSH-1.99-Cisco-1.25\r\n", Status.PASS, "ssh-banner"),
        (b"Welcome to the lab\r\nAuthorised use only\r\nSSH-2.0-OpenSSH_9.2\r\n", Status.PASS, "ssh-banner"),
        (b"SSH-2.0-dropbear_2022.83\n", Status.PASS, "ssh-banner"),
        (b"SSH-1.5-OldServer\r\n", Status.FAIL, "ssh-1-only"),
        (b"SSH-3.0-Future\r\n", Status.FAIL, "ssh-version-unsupported"),
    ],
    ids=["ssh-1.99", "text-lines-before-banner", "bare-lf", "ssh-1-only", "unknown-version"],
)
def test_ssh_version_line_decides_the_status(sent: bytes, status: Status, reason: str) -> None:
    def banner(stand_in: StandIn, connection: socket.socket) -> None:
        connection.sendall(sent)
        stand_in.read_until(connection, b"\n")

    with serving(banner) as stand_in:
        finding, _ = probe(stand_in, "ssh")

    assert (finding.status, finding.evidence["reason"]) == (status, reason)
    assert finding.evidence["banner"] == sent.splitlines()[-1].decode()


def test_http_server_on_an_ssh_port_says_what_it_heard() -> None:
    def nginx(stand_in: StandIn, connection: socket.socket) -> None:
        stand_in.read_until(connection, b"\n")
        connection.sendall(NGINX_400)

    with serving(nginx) as stand_in:
        finding, _ = probe(stand_in, "ssh")

    assert finding.status is Status.FAIL
    assert finding.summary == "port open but not SSH: HTTP/1.1 400 Bad Request"
    assert finding.evidence["reason"] == "not-ssh"
    assert finding.evidence["heard"].startswith("HTTP/1.1 400 Bad Request\\r\\nServer: nginx/1.22.1")
    assert f"TCP {stand_in.port} must reach the system's SSH server" in finding.remediation


@pytest.mark.deadline
def test_silent_tarpit_resolves_within_the_deadline_with_its_own_reason() -> None:
    with serving(lambda stand_in, connection: _sleep_out(connection)) as stand_in:
        finding, elapsed = probe(stand_in, "ssh")

    assert finding.status is Status.FAIL
    assert finding.evidence["reason"] == "silent"
    assert finding.summary.startswith("port open but silent: no SSH banner within ")
    assert finding.evidence["bytes_read"] == 0
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


@pytest.mark.parametrize(
    ("behaviour", "reason", "summary"),
    [
        (lambda stand_in, connection: _reset(connection), "connection-reset", "connection was reset before an SSH"),
        (
            lambda stand_in, connection: stand_in.read_until(connection, b"\n"),
            "connection-closed",
            "connection was closed before an SSH banner",
        ),
        (
            lambda stand_in, connection: (stand_in.read_until(connection, b"\n"), connection.sendall(b"SSH-2.0-Op")),
            "connection-closed",
            "connection was closed before an SSH banner (heard SSH-2.0-Op)",
        ),
    ],
    ids=["reset", "closed", "closed-mid-banner"],
)
@pytest.mark.deadline
def test_connection_dropped_before_a_banner(
    behaviour: Callable[[StandIn, socket.socket], None], reason: str, summary: str
) -> None:
    with serving(behaviour) as stand_in:
        finding, elapsed = probe(stand_in, "ssh")

    assert (finding.status, finding.evidence["reason"]) == (Status.FAIL, reason)
    assert summary in finding.summary
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


@pytest.mark.parametrize(
    ("chunk", "summary"),
    [
        (b"\x00junk junk junk\r\n", "port open but not SSH: \\x00junk junk junk"),
        (b"A" * 4096, "port open but not SSH: " + "A" * 77 + "..."),
        (b"220 mail.example ESMTP\r\n", "port open but not SSH: 220 mail.example ESMTP"),
    ],
    ids=["binary-junk", "endless-line", "endless-text-lines"],
)
@pytest.mark.deadline
def test_flood_is_read_only_up_to_its_bound(chunk: bytes, summary: str) -> None:
    def flood(stand_in: StandIn, connection: socket.socket) -> None:
        ends_at = time.monotonic() + SERVER_LIFETIME_SECONDS
        while time.monotonic() < ends_at:
            connection.sendall(chunk * 16)

    with serving(flood) as stand_in:
        finding, elapsed = probe(stand_in, "ssh")

    assert (finding.status, finding.evidence["reason"]) == (Status.FAIL, "not-ssh")
    assert finding.summary == summary
    assert finding.evidence["bytes_read"] <= service.BANNER_BYTES_LIMIT
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


def test_trickled_banner_that_completes_in_time_passes() -> None:
    def trickle(stand_in: StandIn, connection: socket.socket) -> None:
        for byte in b"SSH-2.0-Trickle_1.0\r\n":
            connection.sendall(bytes([byte]))
            time.sleep(0.02)
        stand_in.read_until(connection, b"\n")

    with serving(trickle) as stand_in:
        finding, _ = probe(stand_in, "ssh")

    assert (finding.status, finding.evidence["banner"]) == (Status.PASS, "SSH-2.0-Trickle_1.0")


@pytest.mark.deadline
def test_trickled_banner_that_never_ends_stops_at_the_deadline() -> None:
    def endless_trickle(stand_in: StandIn, connection: socket.socket) -> None:
        connection.sendall(b"SSH-2.0-")
        ends_at = time.monotonic() + SERVER_LIFETIME_SECONDS
        while time.monotonic() < ends_at:
            connection.sendall(b"x")
            time.sleep(0.2)

    with serving(endless_trickle) as stand_in:
        finding, elapsed = probe(stand_in, "ssh")

    assert (finding.status, finding.evidence["reason"]) == (Status.FAIL, "banner-incomplete")
    assert "did not arrive in full" in finding.summary
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


# HTTP ports


def _http_answer(response: bytes) -> Callable[[StandIn, socket.socket], None]:
    def answer(stand_in: StandIn, connection: socket.socket) -> None:
        stand_in.read_until(connection, b"\r\n\r\n")
        connection.sendall(response)

    return answer


@pytest.mark.parametrize(
    ("response", "expected", "summary_end"),
    [
        (
            b"HTTP/1.1 301 Moved Permanently\r\nServer: nginx/1.22.1\r\nLocation: https://127.0.0.1/\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n",
            {
                "status_code": 301,
                "status_line": "HTTP/1.1 301 Moved Permanently",
                "server": "nginx/1.22.1",
                "location": "https://127.0.0.1/",
                "redirect_to_https": True,
            },
            "from nginx/1.22.1, redirects to HTTPS (https://127.0.0.1/)",
        ),
        (
            b"HTTP/1.1 302 Found\r\nServer: Apache\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n",
            {"status_code": 302, "server": "Apache", "location": "/login", "redirect_to_https": False},
            "HTTP/1.1 302 Found from Apache, redirects to /login",
        ),
        (
            b"HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
            {"status_code": 404, "status_line": "HTTP/1.0 404 Not Found", "server": None, "location": None},
            "HTTP/1.0 404 Not Found",
        ),
    ],
    ids=["redirect-to-https", "redirect-on-same-port", "not-found-still-http"],
)
def test_any_http_response_passes_and_is_recorded(
    response: bytes, expected: dict[str, object], summary_end: str
) -> None:
    with serving(_http_answer(response)) as stand_in:
        finding, _ = probe(stand_in, "http")

    assert (finding.status, finding.evidence["reason"]) == (Status.PASS, "http-response")
    assert {key: finding.evidence[key] for key in expected} == expected
    assert finding.summary.endswith(summary_end)
    request = stand_in.received[0]
    assert request.startswith(b"GET / HTTP/1.1\r\n")
    assert b"authorization" not in request.lower()
    assert len(stand_in.received) == 1, "a redirect was followed"


def test_ssh_server_on_an_http_port_says_what_it_heard() -> None:
    def sshd(stand_in: StandIn, connection: socket.socket) -> None:
        connection.sendall(OPENSSH_BANNER + b"\r\n")
        stand_in.read_until(connection, b"\n")
        connection.sendall(b"Invalid SSH identification string.\r\n")

    with serving(sshd) as stand_in:
        finding, _ = probe(stand_in, "http")

    assert (finding.status, finding.evidence["reason"]) == (Status.FAIL, "not-http")
    assert finding.summary == f"port open but not HTTP: {OPENSSH_BANNER.decode()}"


@pytest.mark.parametrize(
    ("behaviour", "reason", "summary"),
    [
        (lambda stand_in, connection: _sleep_out(connection), "no-response", "no complete HTTP response within"),
        (
            lambda stand_in, connection: stand_in.read_until(connection, b"\r\n\r\n"),
            "connection-closed",
            "closed without an HTTP response",
        ),
        (lambda stand_in, connection: _reset(connection), "connection-reset", "reset without an HTTP response"),
        (
            lambda stand_in, connection: _trickle_headers(connection),
            "no-response",
            "no complete HTTP response within",
        ),
    ],
    ids=["silent", "closed", "reset", "trickled-headers"],
)
@pytest.mark.deadline
def test_http_port_that_does_not_answer_fails_within_the_deadline(
    behaviour: Callable[[StandIn, socket.socket], None], reason: str, summary: str
) -> None:
    with serving(behaviour) as stand_in:
        finding, elapsed = probe(stand_in, "http")

    assert (finding.status, finding.evidence["reason"]) == (Status.FAIL, reason)
    assert summary in finding.summary
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


def _trickle_headers(connection: socket.socket) -> None:
    connection.recv(4096)
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    ends_at = time.monotonic() + SERVER_LIFETIME_SECONDS
    while time.monotonic() < ends_at:
        connection.sendall(b"X-Slow: 1\r\n")
        time.sleep(0.1)


# HTTPS port and its certificate


@contextlib.contextmanager
def tls_serving(
    certificate: LabCertificate, tmp_path: Path, after_handshake: Callable[[StandIn, ssl.SSLSocket], None]
) -> Iterator[StandIn]:
    (tmp_path / "cert.pem").write_text(certificate.cert_pem)
    (tmp_path / "key.pem").write_text(certificate.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    def tls(stand_in: StandIn, connection: socket.socket) -> None:
        with context.wrap_socket(connection, server_side=True) as tls_connection:
            after_handshake(stand_in, tls_connection)

    with serving(tls) as stand_in:
        yield stand_in


def _gui_page(stand_in: StandIn, connection: ssl.SSLSocket) -> None:
    stand_in.read_until(connection, b"\r\n\r\n")
    connection.sendall(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def test_https_records_tls_and_the_certificate_as_openssl_reads_it(tmp_path: Path) -> None:
    pem, _, _ = make_certificate("pbx.lab.invalid", dns_names=("pbx.lab.invalid",), ip_addresses=("127.0.0.1",))

    with tls_serving(pem, tmp_path, _gui_page) as stand_in:
        finding, _ = probe(stand_in, "https")

    assert (finding.status, finding.evidence["reason"]) == (Status.PASS, "https-response")
    evidence = finding.evidence
    assert evidence["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert evidence["tls_cipher"]
    assert (evidence["status_code"], evidence["server"]) == (200, "nginx/1.22.1")
    certificate = evidence["certificate"]
    assert certificate["subject"] == certificate["issuer"] == "CN=pbx.lab.invalid"
    assert (certificate["san_dns"], certificate["san_ip"]) == (["pbx.lab.invalid"], ["127.0.0.1"])
    assert certificate["self_signed"] is True
    assert certificate["days_left"] in (364, 365)
    assert certificate["fingerprint_sha256"] == openssl_fingerprint(pem.cert_pem)
    assert "self-signed certificate valid until" in finding.summary
    assert stand_in.received[0].startswith(b"GET / HTTP/1.1\r\n")


def test_expired_certificate_is_a_warning_that_says_when(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    expired_on = now - timedelta(days=30)
    pem, _, _ = make_certificate(not_before=now - timedelta(days=400), not_after=expired_on)

    with tls_serving(pem, tmp_path, _gui_page) as stand_in:
        finding, _ = probe(stand_in, "https")

    assert (finding.status, finding.evidence["reason"]) == (Status.WARN, "certificate-expired")
    when = expired_on.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"expired on {when} (30 days ago)" in finding.summary
    assert finding.evidence["certificate"]["days_left"] == -30
    assert finding.evidence["certificate"]["not_after"] == when
    assert "Renew" in finding.remediation


def test_certificate_not_yet_valid_is_a_warning(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    pem, _, _ = make_certificate(not_before=now + timedelta(days=10), not_after=now + timedelta(days=400))

    with tls_serving(pem, tmp_path, _gui_page) as stand_in:
        finding, _ = probe(stand_in, "https")

    assert (finding.status, finding.evidence["reason"]) == (Status.WARN, "certificate-not-yet-valid")
    assert "is not valid until" in finding.summary


@pytest.mark.parametrize("same_name", [False, True], ids=["ca-issued", "ca-issued-under-the-same-name"])
def test_certificate_issued_by_another_key_is_not_self_signed(same_name: bool) -> None:
    _, ca, ca_key = make_certificate("pbx.lab.invalid" if same_name else "Lab CA", dns_names=())
    pem, leaf, _ = make_certificate("pbx.lab.invalid", issuer=(ca, ca_key))

    evidence = certificate_evidence(leaf.public_bytes(serialization.Encoding.DER), datetime.now(UTC))

    assert evidence["self_signed"] is False
    assert evidence["issuer"] == ("CN=pbx.lab.invalid" if same_name else "CN=Lab CA")
    assert evidence["fingerprint_sha256"] == openssl_fingerprint(pem.cert_pem)


def test_plain_http_on_the_https_port_fails_the_handshake_and_says_so() -> None:
    def plain_nginx(stand_in: StandIn, connection: socket.socket) -> None:
        stand_in.received.append(connection.recv(4096))
        connection.sendall(NGINX_400)

    with serving(plain_nginx) as stand_in:
        finding, _ = probe(stand_in, "https")

    assert (finding.status, finding.evidence["reason"]) == (Status.FAIL, "tls-handshake-failed")
    assert finding.summary.startswith("port open but the TLS handshake failed")
    assert "does not speak TLS (plain HTTP?)" in finding.summary
    assert stand_in.received[0].startswith(b"\x16\x03"), "the probe did not send a TLS ClientHello"


@pytest.mark.parametrize(
    ("after_handshake", "certificate_recorded"),
    [
        (None, False),
        (lambda stand_in, connection: _sleep_out(connection), True),
        (lambda stand_in, connection: _trickle_headers(connection), True),
    ],
    ids=["tarpit-before-handshake", "silent-after-handshake", "trickled-headers-over-tls"],
)
@pytest.mark.deadline
def test_https_port_that_does_not_answer_fails_within_the_deadline(
    tmp_path: Path, after_handshake: Callable[[StandIn, ssl.SSLSocket], None] | None, certificate_recorded: bool
) -> None:
    pem, _, _ = make_certificate()
    server = (
        serving(lambda stand_in, connection: _sleep_out(connection))
        if after_handshake is None
        else tls_serving(pem, tmp_path, after_handshake)
    )
    with server as stand_in:
        finding, elapsed = probe(stand_in, "https")

    assert (finding.status, finding.evidence["reason"]) == (Status.FAIL, "no-response")
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)
    assert ("certificate" in finding.evidence) is certificate_recorded
