"""Hostile SSH servers for the lab: run inside a lab container as `python3 hostile_ssh_server.py MODE PORT`.

Each mode misbehaves in one way an SSH port on the internet can:
  banner-flood    megabytes of text lines before the version line
  long-version    a version line 100 KB long
  kex-stall       a valid banner, then silence in key exchange
  kex-reset       a valid banner, then a TCP reset once the client's key exchange starts
  exec-hang       a real SSH server (paramiko) that accepts root's password and never answers the `exec` request
  channel-hang    the same, but it never answers the session channel's open
  uid-flood       accepts root's password and answers `id -u` with 1 GB of output, streamed without regard for the
                  client's channel window (SSH flow control)
  good            the control: a short text preamble, then a real SSH server where `id -u` prints 0

The paramiko modes read root's password from $HOSTILE_ROOT_PASSWORD; nothing here prints it. Every connection is
held for at most HOLD_SECONDS, and the server itself ends after LIFETIME_SECONDS.
Standard library only, except paramiko for the modes that log in (the lab image has none: the test bind-mounts the
host's site-packages and sets PYTHONPATH).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HOLD_SECONDS = 30.0
LIFETIME_SECONDS = 600.0
FLOOD_BYTES = 8 * 1024 * 1024
LONG_VERSION_BYTES = 100 * 1024
UID_FLOOD_BYTES = 1024 * 1024 * 1024
VERSION_LINE = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
PREAMBLE = b"Authorized use only.\r\nThis system is monitored.\r\n"


def _hold(connection: socket.socket) -> None:
    """Keep the connection open and silent, reading whatever comes, until the peer leaves or HOLD_SECONDS pass."""
    ends_at = time.monotonic() + HOLD_SECONDS
    while (left := ends_at - time.monotonic()) > 0:
        connection.settimeout(left)
        try:
            if not connection.recv(65536):
                return
        except OSError:
            return


def banner_flood(connection: socket.socket) -> None:
    line_number = 0
    sent = 0
    while sent < FLOOD_BYTES:
        lines = b"".join(
            b"flood line %08d: the quick brown fox jumps over the lazy dog, again and again and again\r\n"
            % (line_number + offset)
            for offset in range(256)
        )
        connection.sendall(lines)
        line_number += 256
        sent += len(lines)
    connection.sendall(VERSION_LINE)
    _hold(connection)


def long_version(connection: socket.socket) -> None:
    connection.sendall(b"SSH-2.0-" + b"A" * LONG_VERSION_BYTES + b"\r\n")
    _hold(connection)


def kex_stall(connection: socket.socket) -> None:
    connection.sendall(VERSION_LINE)
    _hold(connection)


def kex_reset(connection: socket.socket) -> None:
    connection.sendall(VERSION_LINE)
    received = b""
    ends_at = time.monotonic() + HOLD_SECONDS
    # Wait for the client's version line and the first bytes of its KEXINIT packet: then it is mid key exchange.
    while time.monotonic() < ends_at:
        connection.settimeout(max(0.01, ends_at - time.monotonic()))
        chunk = connection.recv(4096)
        if not chunk:
            return
        received += chunk
        if b"\n" in received and received.split(b"\n", 1)[1]:
            break
    # Linger 0: close() sends a RST instead of a FIN.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _paramiko_session(hang: str) -> Callable[[socket.socket], None]:
    """A real SSH server that lets root in with $HOSTILE_ROOT_PASSWORD; `hang` says how its session misbehaves."""
    import paramiko

    password = os.environ["HOSTILE_ROOT_PASSWORD"]
    host_key = paramiko.ECDSAKey.generate()
    released = threading.Event()

    class Server(paramiko.ServerInterface):
        def __init__(self) -> None:
            self.exec_request = threading.Event()

        def get_allowed_auths(self, username: str) -> str:
            return "password"

        def check_auth_password(self, username: str, offered: str) -> int:
            if username == "root" and offered == password:
                return paramiko.AUTH_SUCCESSFUL
            return paramiko.AUTH_FAILED

        def check_channel_request(self, kind: str, chanid: int) -> int:
            if hang == "channel":
                # Blocks the server's transport thread: the channel open is never answered.
                released.wait(HOLD_SECONDS)
            if kind == "session":
                return paramiko.OPEN_SUCCEEDED
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

        def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
            if hang == "exec":
                # Blocks the server's transport thread: the exec request (want-reply) is never answered.
                released.wait(HOLD_SECONDS)
            self.exec_request.set()
            return True

    def serve(connection: socket.socket) -> None:
        if hang == "none":
            # RFC 4253 allows text lines before the version line; a real server may send a short preamble.
            connection.sendall(PREAMBLE)
        transport = paramiko.Transport(connection)
        transport.add_server_key(host_key)
        server = Server()
        try:
            transport.start_server(server=server)
            channel = transport.accept(HOLD_SECONDS)
            if channel is None or not server.exec_request.wait(HOLD_SECONDS):
                return
            if hang == "flood":
                chunk = b"0\n" * 32768
                sent = 0
                ends_at = time.monotonic() + HOLD_SECONDS
                # A hostile server ignores SSH flow control: the client's window no longer holds the flood back.
                channel.out_window_size = UID_FLOOD_BYTES
                channel.settimeout(HOLD_SECONDS)
                try:
                    while sent < UID_FLOOD_BYTES and time.monotonic() < ends_at and not channel.closed:
                        channel.sendall(chunk)
                        sent += len(chunk)
                finally:
                    print(f"uid-flood: sent {sent} bytes of `id -u` output", flush=True)
            else:
                channel.sendall(b"0\n")
            channel.send_exit_status(0)
            channel.close()
            _hold_transport(transport)
        except (paramiko.SSHException, OSError, EOFError):
            return
        finally:
            transport.close()

    return serve


def _hold_transport(transport: Any) -> None:
    ends_at = time.monotonic() + HOLD_SECONDS
    while transport.is_active() and time.monotonic() < ends_at:
        time.sleep(0.1)


def behaviour(mode: str) -> Callable[[socket.socket], None]:
    """The connection handler for `mode`."""
    raw = {
        "banner-flood": banner_flood,
        "long-version": long_version,
        "kex-stall": kex_stall,
        "kex-reset": kex_reset,
    }
    if mode in raw:
        return raw[mode]
    hangs = {"exec-hang": "exec", "channel-hang": "channel", "uid-flood": "flood", "good": "none"}
    if mode in hangs:
        return _paramiko_session(hangs[mode])
    raise SystemExit(f"unknown mode {mode!r}; one of {', '.join([*raw, *hangs])}")


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    handle = behaviour(mode)
    # Inside its own container: the test reaches it on the container's bridge address.
    server = socket.create_server(("0.0.0.0", port), backlog=128)  # noqa: S104
    server.settimeout(1.0)
    print(f"hostile-ssh {mode} listening on {port}", flush=True)
    stops_at = time.monotonic() + LIFETIME_SECONDS

    def serve(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            handle(connection)

    while time.monotonic() < stops_at:
        try:
            connection, _ = server.accept()
        except TimeoutError:
            continue
        connection.settimeout(HOLD_SECONDS)
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
