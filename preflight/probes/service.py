"""service/<port>: the port must be answered by the service support expects there, not merely accepted.

SSH ports must send an SSH-2 banner; HTTP ports must answer an HTTP request; the HTTPS port must complete a TLS
handshake and then answer HTTP over it, and its certificate is recorded. Every read is bounded in bytes and
ends at the check's deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from preflight import __version__
from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target
from preflight.web.certificate_evidence import certificate_evidence
from preflight.web.http_client import deadline_response_class, deadline_session, exception_causes

REQUIREMENT = "TCP {port} must be answered by the system's {service}, not merely accepted: {purpose}."
SERVICE_NAMES = {
    "ssh": "SSH server",
    "http": "web server (HTTP)",
    "https": "web server (HTTPS)",
    "http-or-https": "web server (HTTPS or plain HTTP)",
}
SSH_IDENTIFICATION = f"SSH-2.0-preflight_{__version__}\r\n".encode()
SSH2_VERSIONS = ("2.0", "1.99")
# RFC 4253 allows 255 bytes for the version line and text lines before it; both limits leave room for sloppy servers.
BANNER_LINE_LIMIT = 1024
BANNER_BYTES_LIMIT = 8192
SUMMARY_CHARS = 80
EVIDENCE_CHARS = 240
# What OpenSSL says when the first bytes back are not a TLS record, for example an HTTP response.
NOT_TLS_ERRORS = ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")
_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x5C: "\\\\"}


def plan(host: Host, profile: Profile) -> list[Target]:
    return [
        Target(
            check_id=f"service/{required.port}",
            requirement=REQUIREMENT.format(
                port=required.port, service=SERVICE_NAMES[required.service], purpose=required.purpose
            ),
            host=host,
            profile=profile,
            port=required.port,
            needs=f"tcp/{required.port}",
        )
        for required in profile.ports
        if required.service in SERVICE_NAMES
    ]


def run(target: Target, deadline: Deadline) -> Finding:
    _, port = target.endpoint()
    required = target.profile.port(port)
    if required is None:
        raise ValueError(f"{target.check_id}: port {port} is not in the {target.profile.product} profile")
    if required.service == "ssh":
        return ssh_identity(target, deadline)
    if required.service == "http":
        return http_identity(target, deadline)
    if required.service == "http-or-https":
        return web_identity(target, deadline)
    return https_identity(target, deadline)


def web_identity(target: Target, deadline: Deadline) -> Finding:
    """HTTPS if the port completes a TLS handshake, else plain HTTP: either passes, and the evidence says which."""
    tls = https_identity(target, deadline)
    not_tls = tls.evidence.get("reason") == "tls-handshake-failed" and tls.evidence.get("not_tls")
    if not not_tls:
        return Finding(tls.status, tls.summary, {**tls.evidence, "scheme": "https"}, tls.remediation)
    plain = http_identity(target, deadline)
    evidence = {**plain.evidence, "scheme": "http", "tls_error": tls.evidence.get("tls_error")}
    if plain.status is not Status.PASS:
        return Finding(plain.status, plain.summary, evidence, plain.remediation)
    return Finding(Status.PASS, f"{plain.summary} (plain HTTP: no TLS on this port)", evidence, plain.remediation)


def printable(data: bytes, limit: int = SUMMARY_CHARS) -> str:
    """`data` as one line of text: printable ASCII as it is, anything else escaped, cut to `limit` characters."""
    text = "".join(
        _ESCAPES.get(byte) or (chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}") for byte in data[: limit + 1]
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_line(data: bytes) -> bytes:
    """The first line of `data` that is not empty, without its line ending."""
    return next((line.rstrip(b"\r") for line in data.split(b"\n") if line.strip()), b"")


# SSH


@dataclass(frozen=True, slots=True)
class BannerRead:
    """What an SSH port sent before the version line, and why reading stopped."""

    received: bytes
    ended_by: str  # "version", "version-too-long", "other-protocol", "eof", "reset", "byte-limit", "deadline"
    version_line: bytes = b""


def read_ssh_banner(sock: socket.socket, deadline: Deadline) -> BannerRead:
    """Reads until the SSH version line, a sign of another protocol, the end of the stream, the byte limit or the
    deadline, whichever comes first."""
    received = b""
    while True:
        verdict = _scan_banner_lines(received)
        if verdict is not None:
            return verdict
        if len(received) >= BANNER_BYTES_LIMIT:
            return BannerRead(received, "byte-limit")
        if deadline.expired:
            return BannerRead(received, "deadline")
        sock.settimeout(deadline.cap(deadline.remaining()))
        try:
            chunk = sock.recv(min(4096, BANNER_BYTES_LIMIT - len(received)))
        except TimeoutError:
            return BannerRead(received, "deadline")
        except ConnectionResetError:
            return BannerRead(received, "reset")
        if not chunk:
            return BannerRead(received, "eof")
        received += chunk


def _scan_banner_lines(received: bytes) -> BannerRead | None:
    *lines, pending = received.split(b"\n")
    for line in lines:
        line = line.rstrip(b"\r")
        if line.startswith(b"SSH-"):
            too_long = len(line) > BANNER_LINE_LIMIT
            return BannerRead(received, "version-too-long" if too_long else "version", line[: BANNER_LINE_LIMIT + 1])
        if _not_text(line) or line.startswith(b"HTTP/") or len(line) > BANNER_LINE_LIMIT:
            return BannerRead(received, "other-protocol")
    if pending.startswith(b"SSH-") and len(pending) > BANNER_LINE_LIMIT:
        return BannerRead(received, "version-too-long", pending[: BANNER_LINE_LIMIT + 1])
    if _not_text(pending) or len(pending) > BANNER_LINE_LIMIT:
        return BannerRead(received, "other-protocol")
    return None


def _not_text(line: bytes) -> bool:
    """Control bytes never appear in an SSH version line or the text lines RFC 4253 allows before it."""
    return any((byte < 0x20 and byte not in (0x09, 0x0D)) or byte == 0x7F for byte in line)


def _partial_ssh_line(received: bytes) -> bool:
    pending = received.rsplit(b"\n", 1)[-1]
    return bool(pending) and (pending.startswith(b"SSH-") or b"SSH-".startswith(pending))


def ssh_identity(target: Target, deadline: Deadline) -> Finding:
    """Sends our identification line and reads the server's SSH version line."""
    ip, port = target.endpoint()
    evidence: dict[str, Any] = {"ip": ip, "port": port, "service": "ssh"}
    started = time.monotonic()
    try:
        sock = socket.create_connection((ip, port), timeout=deadline.cap(deadline.remaining()))
    except ConnectionResetError:
        # Accepted, then reset before connect() returned: the port is open, the service drops us.
        read = BannerRead(b"", "reset")
    except OSError as exc:
        return _connect_failed(target, evidence, exc.strerror or type(exc).__name__)
    else:
        with sock:
            try:
                # Sent before the server speaks, as OpenSSH does: it also makes a web server on this port answer.
                sock.sendall(SSH_IDENTIFICATION)
            except (ConnectionResetError, BrokenPipeError):
                read = BannerRead(b"", "reset")
            else:
                read = read_ssh_banner(sock, deadline)
    waited = round(time.monotonic() - started, 1)
    if read.received:
        evidence["heard"] = printable(read.received, EVIDENCE_CHARS)
    evidence["bytes_read"] = len(read.received)
    return _ssh_finding(target, read, waited, evidence)


def _ssh_finding(target: Target, read: BannerRead, waited: float, evidence: dict[str, Any]) -> Finding:
    port, purpose = target.port, target.purpose
    heard = printable(first_line(read.received)) or printable(read.received)
    if read.ended_by == "version":
        banner = printable(read.version_line, EVIDENCE_CHARS)
        evidence.pop("heard", None)
        protocol, _, software = read.version_line[4:].partition(b"-")
        evidence |= {
            "banner": banner,
            "protocol_version": printable(protocol),
            "software_version": printable(software.split(b" ", 1)[0]),
        }
        if protocol.decode("latin-1") in SSH2_VERSIONS:
            return Finding(Status.PASS, f"SSH server on TCP {port}: {banner}", evidence | {"reason": "ssh-banner"})
        if protocol.startswith(b"1."):
            return Finding(
                Status.FAIL,
                f"the SSH server on TCP {port} speaks only SSH-1: {banner}",
                evidence | {"reason": "ssh-1-only"},
                f"SSH-1 is obsolete and insecure, and support connects with SSH-2 only. Update the SSH server on the "
                f"system (OpenSSH speaks SSH-2), or forward TCP {port} to the system's own SSH server.",
            )
        return Finding(
            Status.FAIL,
            f"the server on TCP {port} announces an SSH version support cannot use: {banner}",
            evidence | {"reason": "ssh-version-unsupported"},
            f"Support connects with SSH-2. Forward TCP {port} to the system's own SSH server. "
            f"Support needs it for {purpose}.",
        )
    if read.ended_by == "version-too-long":
        return Finding(
            Status.FAIL,
            f"the SSH version line on TCP {port} is longer than {BANNER_LINE_LIMIT} bytes (RFC 4253 allows 255): "
            f"{printable(read.version_line)}",
            evidence | {"reason": "version-line-too-long"},
            f"An SSH server's version line is short (OpenSSH: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3). Check the port "
            f"forward: TCP {port} must reach the system's own SSH server, not a tarpit, honeypot or another service. "
            f"Support needs it for {purpose}.",
        )
    wrong_service = (
        f"Something other than the system's SSH server answers on TCP {port}. Check the port forward on your router "
        f"or firewall: TCP {port} must reach the system's SSH server, not a web server or another service. "
        f"Support needs it for {purpose}."
    )
    if read.ended_by in ("other-protocol", "byte-limit"):
        return Finding(Status.FAIL, f"port open but not SSH: {heard}", evidence | {"reason": "not-ssh"}, wrong_service)
    if read.ended_by == "deadline":
        evidence["waited_s"] = waited
        if not read.received:
            return Finding(
                Status.FAIL,
                f"port open but silent: no SSH banner within {waited:g} s",
                evidence | {"reason": "silent"},
                f"Something accepts connections on TCP {port} but never answers. A firewall, intrusion-prevention "
                "system or tarpit may be intercepting the port, or the SSH server on the system has hung: check the "
                "port forward and any security appliance in front of the system, and restart sshd. "
                f"Support needs it for {purpose}.",
            )
        if _partial_ssh_line(read.received):
            return Finding(
                Status.FAIL,
                f"the SSH banner on TCP {port} did not arrive in full within {waited:g} s (heard {heard})",
                evidence | {"reason": "banner-incomplete"},
                f"The SSH server on TCP {port} answers too slowly, or something on the way throttles it. Check the "
                "system's load and any security appliance in front of it.",
            )
        return Finding(Status.FAIL, f"port open but not SSH: {heard}", evidence | {"reason": "not-ssh"}, wrong_service)
    if read.received and not _partial_ssh_line(read.received):
        return Finding(Status.FAIL, f"port open but not SSH: {heard}", evidence | {"reason": "not-ssh"}, wrong_service)
    how = "reset" if read.ended_by == "reset" else "closed"
    after = f" (heard {heard})" if read.received else ""
    return Finding(
        Status.FAIL,
        f"port open but the connection was {how} before an SSH banner{after}",
        evidence | {"reason": f"connection-{how}"},
        f"Something on TCP {port} accepts the connection and then drops it. The SSH server may refuse support's "
        "address (sshd's MaxStartups, AllowUsers or tcp_wrappers, fail2ban), or a firewall in front of the system "
        "intercepts the port. The SSH server's log on the system says which.",
    )


def _connect_failed(target: Target, evidence: dict[str, Any], problem: str) -> Finding:
    port = target.port
    return Finding(
        Status.FAIL,
        f"could not connect to TCP {port} again to identify its service: {problem}",
        evidence | {"reason": "connect-failed"},
        f"TCP {port} was open a moment earlier. Check that the service on it is not restarting and that nothing "
        "limits the number of connections from support's address.",
    )


# HTTP and HTTPS


@dataclass(frozen=True, slots=True)
class ExchangeFailure:
    reason: str
    detail: str


def http_identity(target: Target, deadline: Deadline) -> Finding:
    """One GET / without credentials and without following redirects."""
    ip, port = target.endpoint()
    url = f"http://{_url_host(ip)}:{port}/"
    evidence: dict[str, Any] = {"ip": ip, "port": port, "service": "http", "url": url}
    started = time.monotonic()
    try:
        with (
            deadline_session(deadline) as session,
            session.get(url, allow_redirects=False, stream=True, timeout=deadline.cap(deadline.remaining())) as reply,
        ):
            evidence |= response_evidence(
                url,
                reply.status_code,
                reply.reason,
                reply.raw.version,
                reply.headers.get("Server"),
                reply.headers.get("Location"),
            )
    except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        failure = exchange_failure(exc, deadline)
        return _http_failed(target, evidence, failure, round(time.monotonic() - started, 1))
    if deadline.expired:
        return _http_failed(target, evidence, ExchangeFailure("no-response", ""), round(time.monotonic() - started, 1))
    return Finding(Status.PASS, f"HTTP on TCP {port}: {_answer_text(evidence)}", evidence | {"reason": "http-response"})


def response_evidence(
    url: str, status: int, reason: str | None, version: int, server: str | None, location: str | None
) -> dict[str, Any]:
    """What an HTTP response says about the server: status, `Server` header and where it redirects."""
    redirect_to = urljoin(url, location) if location else None
    return {
        "status_code": status,
        "status_line": f"HTTP/{version // 10}.{version % 10} {status} {reason or ''}".rstrip(),
        "server": server,
        "location": location,
        "redirect_to_https": redirect_to is not None and urlsplit(redirect_to).scheme == "https",
    }


def _answer_text(evidence: Mapping[str, Any]) -> str:
    text = str(evidence["status_line"])
    if evidence["server"]:
        text += f" from {evidence['server']}"
    if evidence["redirect_to_https"]:
        text += f", redirects to HTTPS ({evidence['location']})"
    elif evidence["location"]:
        text += f", redirects to {evidence['location']}"
    return text


def exchange_failure(exc: BaseException, deadline: Deadline) -> ExchangeFailure:
    """Why an HTTP exchange failed, from the exception and the exceptions it wraps."""
    causes = list(exception_causes(exc))

    def first(kind: type[BaseException] | types.UnionType) -> BaseException | None:
        return next((cause for cause in causes if isinstance(cause, kind)), None)

    if deadline.expired or first(TimeoutError | requests.Timeout):
        return ExchangeFailure("no-response", "")
    if first(http.client.RemoteDisconnected):
        return ExchangeFailure("connection-closed", "")
    if first(http.client.LineTooLong):
        return ExchangeFailure("not-http", "a status or header line longer than 64 KiB")
    # http.client's limit on header lines raises the bare HTTPException, told apart only by its text.
    if any(type(cause) is http.client.HTTPException and str(cause).startswith("got more than") for cause in causes):
        return ExchangeFailure("too-many-headers", "more than 100 header lines")
    if bad_status := first(http.client.BadStatusLine):
        line = str(bad_status.args[0]) if bad_status.args else ""
        return ExchangeFailure("not-http", printable(first_line(line.encode("latin-1", "replace"))))
    # Before refusals: a connection reset while urllib3 connects is wrapped as a failure to connect.
    if first(ConnectionResetError | BrokenPipeError):
        return ExchangeFailure("connection-reset", "")
    if first(ConnectionRefusedError | urllib3.exceptions.NewConnectionError):
        return ExchangeFailure("connect-failed", "")
    return ExchangeFailure("http-error", type(exc).__name__)


def _http_failed(target: Target, evidence: dict[str, Any], failure: ExchangeFailure, waited: float) -> Finding:
    port, purpose = target.port, target.purpose
    evidence["reason"] = failure.reason
    forward_advice = (
        f"Check the port forward on your router or firewall: TCP {port} must reach the system's Web GUI. "
        f"Support needs it for {purpose}."
    )
    if failure.reason == "not-http":
        evidence["heard"] = failure.detail
        return Finding(
            Status.FAIL,
            f"port open but not HTTP: {failure.detail}",
            evidence,
            f"Something other than the system's web server answers on TCP {port}. {forward_advice}",
        )
    if failure.reason == "no-response":
        evidence["waited_s"] = waited
        return Finding(
            Status.FAIL,
            f"port open but no complete HTTP response within {waited:g} s",
            evidence,
            f"Something accepts connections on TCP {port} but does not answer HTTP in time. A firewall or tarpit may "
            f"intercept the port, or the web server on the system is overloaded or hung. {forward_advice}",
        )
    if failure.reason == "connect-failed":
        return _connect_failed(target, evidence, "connection refused")
    if failure.reason == "too-many-headers":
        return Finding(
            Status.FAIL,
            f"port open but the HTTP response has {failure.detail}",
            evidence,
            f"A web server answers on TCP {port}, but not as a PBX Web GUI does: its response carries more header "
            f"lines than any browser accepts. {forward_advice}",
        )
    described = {
        "connection-closed": "the connection was closed without an HTTP response",
        "connection-reset": "the connection was reset without an HTTP response",
    }.get(failure.reason, f"the HTTP request failed: {failure.detail}")
    return Finding(
        Status.FAIL,
        f"port open but {described}",
        evidence,
        f"Something on TCP {port} accepts the connection and then drops it. {forward_advice} If it is, check the web "
        "server's error log on the system.",
    )


def https_identity(target: Target, deadline: Deadline) -> Finding:
    """A TLS handshake without verification (PBX certificates are usually self-signed), then GET / over it."""
    ip, port = target.endpoint()
    evidence: dict[str, Any] = {"ip": ip, "port": port, "service": "https"}
    started = time.monotonic()
    try:
        raw = socket.create_connection((ip, port), timeout=deadline.cap(deadline.remaining()))
    except ConnectionResetError:
        return _http_failed(target, evidence, ExchangeFailure("connection-reset", ""), 0.0)
    except OSError as exc:
        return _connect_failed(target, evidence, exc.strerror or type(exc).__name__)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        context.wrap_socket(raw, do_handshake_on_connect=False) as tls,
        _shut_down_at(tls, deadline),
    ):
        try:
            tls.settimeout(deadline.cap(deadline.remaining()))
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            return _handshake_failed(target, evidence, exc, deadline, round(time.monotonic() - started, 1))
        evidence["tls_version"] = tls.version()
        cipher = tls.cipher()
        evidence["tls_cipher"] = cipher[0] if cipher else None
        der = tls.getpeercert(binary_form=True)
        certificate = certificate_evidence(der, datetime.now(UTC)) if der else None
        evidence["certificate"] = certificate
        url = f"https://{_url_host(ip)}:{port}/"
        evidence["url"] = url
        try:
            evidence |= _get_over(tls, ip, port, url, deadline)
        except (http.client.HTTPException, OSError) as exc:
            failure = exchange_failure(exc, deadline)
            return _http_failed(target, evidence, failure, round(time.monotonic() - started, 1))
    if deadline.expired:
        return _http_failed(target, evidence, ExchangeFailure("no-response", ""), round(time.monotonic() - started, 1))
    return _https_finding(target, evidence, certificate)


def _get_over(tls: ssl.SSLSocket, ip: str, port: int, url: str, deadline: Deadline) -> dict[str, Any]:
    request = (
        f"GET / HTTP/1.1\r\nHost: {_url_host(ip)}:{port}\r\nUser-Agent: preflight/{__version__}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    )
    tls.sendall(request.encode("ascii"))
    # http.client bounds the status line and each header line (64 KiB) and the number of headers (100); each read
    # ends by the deadline, as a server that drips its headers would otherwise outlast it.
    response = deadline_response_class(deadline)(tls, method="GET")
    try:
        response.begin()
        return response_evidence(
            url,
            response.status,
            response.reason,
            response.version,
            response.getheader("Server"),
            response.getheader("Location"),
        )
    finally:
        response.close()


def _https_finding(target: Target, evidence: dict[str, Any], certificate: dict[str, Any] | None) -> Finding:
    port = target.port
    answer = _answer_text(evidence)
    if certificate is None or "error" in certificate:
        return Finding(
            Status.PASS,
            f"HTTPS on TCP {port}: {answer}; no readable certificate",
            evidence | {"reason": "https-response"},
        )
    days_left = certificate["days_left"]
    renew = (
        f"Renew the TLS certificate of the Web GUI on TCP {port} (a new self-signed one is fine for support), or check "
        "the system's clock if the certificate itself is right. Browsers warn about such a certificate, and some "
        "refuse it."
    )
    if certificate["expired"]:
        return Finding(
            Status.WARN,
            f"the certificate on TCP {port} expired on {certificate['not_after']} ({-days_left} days ago); "
            f"HTTPS answers {answer}",
            evidence | {"reason": "certificate-expired"},
            renew,
        )
    if certificate["not_yet_valid"]:
        return Finding(
            Status.WARN,
            f"the certificate on TCP {port} is not valid until {certificate['not_before']}; HTTPS answers {answer}",
            evidence | {"reason": "certificate-not-yet-valid"},
            renew,
        )
    kind = "self-signed " if certificate["self_signed"] else ""
    return Finding(
        Status.PASS,
        f"HTTPS on TCP {port}: {answer}; {kind}certificate valid until {certificate['not_after']} "
        f"({days_left} days left)",
        evidence | {"reason": "https-response"},
    )


def _handshake_failed(
    target: Target, evidence: dict[str, Any], exc: OSError, deadline: Deadline, waited: float
) -> Finding:
    port = target.port
    if deadline.expired or isinstance(exc, TimeoutError):
        return Finding(
            Status.FAIL,
            f"port open but no TLS handshake within {waited:g} s",
            evidence | {"reason": "no-response", "waited_s": waited},
            f"Something accepts connections on TCP {port} but does not complete a TLS handshake. A firewall or tarpit "
            "may intercept the port, or the web server on the system is overloaded or hung. Check the port forward "
            f"on your router or firewall: TCP {port} must reach the system's Web GUI over HTTPS.",
        )
    detail = _tls_error_text(exc)
    evidence |= {"reason": "tls-handshake-failed", "tls_error": detail}
    not_tls = isinstance(exc, ssl.SSLError) and exc.reason in (
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
    )
    evidence["not_tls"] = not_tls
    hint = ": the port does not speak TLS (plain HTTP?)" if not_tls else ""
    return Finding(
        Status.FAIL,
        f"port open but the TLS handshake failed ({detail}){hint}",
        evidence,
        f"TCP {port} must reach the system's Web GUI over HTTPS. Check that the port forward goes to the system's "
        f"HTTPS port (443), not to plain HTTP (80) or another service, and that the web server has TLS enabled.",
    )


def _tls_error_text(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLEOFError | ConnectionResetError):
        return "the server closed the connection during the handshake"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return exc.strerror or type(exc).__name__


@contextlib.contextmanager
def _shut_down_at(sock: socket.socket, deadline: Deadline) -> Iterator[None]:
    """Shuts `sock` down when the deadline passes: per-read timeouts alone let a trickling server go on forever."""
    watchdog = threading.Timer(deadline.remaining(), _shutdown, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown: SSLSocket.shutdown also drops its SSL object, under a read in another thread.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
