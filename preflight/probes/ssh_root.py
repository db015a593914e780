"""ssh-root/<port>: support must be able to log in as root over SSH, and `id -u` must print 0."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
from pathlib import Path
from typing import Any, cast

import paramiko
from pydantic import SecretStr

from preflight.deadline import Deadline
from preflight.inventory import Credentials, Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target

REQUIREMENT = "Support logs in as root over SSH on TCP {port} with the root password you provide."
UID_COMMAND = "id -u"
_OUTPUT_LIMIT = 4096


def plan(host: Host, profile: Profile) -> list[Target]:
    return [
        Target(
            check_id=f"ssh-root/{required.port}",
            requirement=REQUIREMENT.format(port=required.port),
            host=host,
            profile=profile,
            port=required.port,
            needs=f"service/{required.port}",
        )
        for required in profile.ports_for("ssh")
    ]


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint exactly as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _Progress:
    stage = "connect"


class _Refused(Exception):
    def __init__(self, finding: Finding) -> None:
        self.finding = finding


def run(target: Target, deadline: Deadline) -> Finding:
    ip, port = target.endpoint()
    credentials = target.host.ssh.credentials_for(port)
    if not credentials.provided:
        return Finding(
            Status.FAIL,
            f"root credentials not provided for SSH port {port}",
            {"port": port},
            f"Support needs the root password for SSH on TCP {port}: add ssh.root_password to this host "
            "in the inventory (written as ${ENV_VAR}).",
        )
    evidence: dict[str, Any] = {"port": port}
    progress = _Progress()
    try:
        sock = socket.create_connection((ip, port), timeout=deadline.cap(deadline.remaining()))
    except TimeoutError:
        return _failed(port, evidence, "connection timed out", "connect")
    except OSError as exc:
        return _failed(port, evidence, f"cannot connect: {exc.strerror or exc}", "connect")
    # paramiko's own timeouts cover single waits; shutting the socket down bounds the whole exchange.
    watchdog = threading.Timer(deadline.remaining(), _shutdown, args=(sock,))
    watchdog.start()
    transport = paramiko.Transport(sock)
    try:
        return _login(transport, target, credentials, deadline, evidence, progress)
    except _Refused as refused:
        return refused.finding
    except (paramiko.SSHException, EOFError, OSError) as exc:
        stage = progress.stage
        if deadline.expired:
            return _failed(port, evidence, f"no answer within the deadline during {stage}", stage)
        return _failed(port, evidence, f"SSH {stage} failed: {exc}", stage)
    finally:
        watchdog.cancel()
        transport.close()
        sock.close()


def _login(
    transport: paramiko.Transport,
    target: Target,
    credentials: Credentials,
    deadline: Deadline,
    evidence: dict[str, Any],
    progress: _Progress,
) -> Finding:
    port = target.port
    progress.stage = "banner exchange"
    transport.banner_timeout = deadline.cap(deadline.remaining())
    transport.handshake_timeout = deadline.cap(deadline.remaining())
    transport.auth_timeout = deadline.cap(deadline.remaining())
    transport.start_client(timeout=deadline.cap(deadline.remaining()))
    evidence["banner"] = transport.remote_version
    key = transport.get_remote_server_key()
    evidence["host_key_type"] = key.get_name()
    evidence["host_key_fingerprint"] = fingerprint(key)
    pinned = target.host.ssh.host_key
    if pinned is not None and pinned != evidence["host_key_fingerprint"]:
        return Finding(
            Status.FAIL,
            f"host key does not match the pinned key; the password was not sent (SSH port {port})",
            evidence,
            f"The server on TCP {port} presented {evidence['host_key_fingerprint']}, not the pinned {pinned}. "
            "If the system was reinstalled, update ssh.host_key in the inventory; otherwise something is "
            "intercepting the connection.",
        )
    progress.stage = "authentication"
    _authenticate(transport, target, credentials, evidence)
    progress.stage = "command"
    uid = _run_command(transport, UID_COMMAND, deadline)
    evidence["uid"] = uid
    if uid == "0":
        return Finding(Status.PASS, f"root login works on SSH port {port} (uid 0)", evidence)
    return Finding(
        Status.FAIL,
        f"logged in on SSH port {port}, but `id -u` printed {uid!r}, not 0",
        evidence,
        f"The account support logs in to on TCP {port} must be root (uid 0). Check that the SSH server does not map "
        "root to another user.",
    )


def _authenticate(
    transport: paramiko.Transport, target: Target, credentials: Credentials, evidence: dict[str, Any]
) -> None:
    port = target.port
    try:
        if credentials.key_file is not None:
            evidence["auth_method"] = "publickey"
            transport.auth_publickey("root", _load_key(credentials.key_file, credentials.key_passphrase, port))
        elif credentials.root_password is not None:
            evidence["auth_method"] = "password"
            transport.auth_password("root", credentials.root_password.get_secret_value())
    except paramiko.BadAuthenticationType as exc:
        evidence["auth_methods_offered"] = list(exc.allowed_types)
        raise _Refused(
            Finding(
                Status.FAIL,
                f"SSH port {port} does not accept {evidence['auth_method']} login "
                f"(it offers: {', '.join(exc.allowed_types)})",
                evidence,
                f"Enable password login for root on TCP {port}: set 'PasswordAuthentication yes' and "
                "'PermitRootLogin yes' in /etc/ssh/sshd_config, then restart sshd.",
            )
        ) from None
    except paramiko.AuthenticationException:
        what = "key" if evidence["auth_method"] == "publickey" else "password"
        raise _Refused(
            Finding(
                Status.FAIL,
                f"root {what} refused on SSH port {port} (wrong {what}, or root login not permitted)",
                evidence,
                f"Check the root {what} for TCP {port} in the inventory. If it is right, allow root login with "
                "'PermitRootLogin yes' in /etc/ssh/sshd_config. (SSH does not say which of the two it was.)",
            )
        ) from None


def _load_key(path: Path, passphrase: SecretStr | None, port: int | None) -> paramiko.PKey:
    secret = passphrase.get_secret_value().encode() if passphrase else None
    try:
        # Positional: paramiko 3 names this argument `passphrase`, paramiko 5 `password`; both decrypt with bytes.
        return paramiko.PKey.from_path(path, cast(str | None, secret))
    except paramiko.PasswordRequiredException:
        problem = "is encrypted and the inventory gives no key_passphrase"
    except (paramiko.SSHException, ValueError):
        problem = "could not be decrypted (wrong key_passphrase?) or is not a private key paramiko can read"
    except OSError as exc:
        problem = f"could not be read ({exc.strerror})"
    raise _Refused(
        Finding(
            Status.FAIL,
            f"the key file for SSH port {port} {problem}",
            {"port": port, "key_file": str(path)},
            "Check ssh.key_file and ssh.key_passphrase in the inventory: the key must be an OpenSSH or PEM "
            "private key (RSA, ECDSA or Ed25519) that root accepts.",
        )
    )


def _run_command(transport: paramiko.Transport, command: str, deadline: Deadline) -> str:
    channel = transport.open_session(timeout=deadline.cap(deadline.remaining()))
    channel.settimeout(deadline.cap(deadline.remaining()))
    channel.exec_command(command)
    output = b""
    while len(output) < _OUTPUT_LIMIT:
        chunk = channel.recv(_OUTPUT_LIMIT)
        if not chunk:
            break
        output += chunk
    channel.close()
    return output.decode(errors="replace").strip()


def _failed(port: int, evidence: dict[str, Any], reason: str, stage: str) -> Finding:
    evidence["failed_at"] = stage
    return Finding(
        Status.FAIL,
        f"SSH port {port}: {reason}",
        evidence,
        f"Make sure TCP {port} is forwarded to the system's SSH server (OpenSSH), and that nothing between "
        "support and the system intercepts or slows the connection.",
    )


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
