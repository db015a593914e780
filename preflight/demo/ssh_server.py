"""The demo's SSH server: real SSH (paramiko's server side) on loopback, playing a PBX's root account.

It accepts one password for root, and runs one command, `id -u`, answering as the demo PBX's root shell
would. It runs nothing on this machine.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

ACCEPT_TIMEOUT = 0.2
SESSION_SECONDS = 30


class _RootOnly(paramiko.ServerInterface):
    def __init__(self, password: str) -> None:
        self._password = password
        self.command: bytes | None = None
        self.command_received = threading.Event()

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == "root" and password == self._password:
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        # Answered from the session's own thread, after paramiko has acknowledged the request.
        self.command = command
        self.command_received.set()
        return True


def _answer(channel: paramiko.Channel, command: bytes) -> None:
    if command.strip() == b"id -u":
        channel.sendall(b"0\n")
        channel.send_exit_status(0)
    else:
        channel.sendall_stderr(b"demo PBX: only `id -u` is available\n")
        channel.send_exit_status(127)


@contextmanager
def demo_ssh_server(root_password: str) -> Iterator[int]:
    """Serve SSH on 127.0.0.1 until the block ends; yields the port."""
    host_key = paramiko.ECDSAKey.generate()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(ACCEPT_TIMEOUT)
    stop = threading.Event()

    def serve_one(connection: socket.socket) -> None:
        transport = paramiko.Transport(connection)
        transport.add_server_key(host_key)
        server = _RootOnly(root_password)
        try:
            transport.start_server(server=server)
            channel = transport.accept(SESSION_SECONDS)
            if channel is not None and server.command_received.wait(SESSION_SECONDS) and server.command is not None:
                _answer(channel, server.command)
                channel.shutdown_write()
                # The client closes the session once it has read the answer (paramiko then sets status_event);
                # closing first could cut the answer off.
                channel.status_event.wait(SESSION_SECONDS)
                channel.close()
        except (paramiko.SSHException, OSError, EOFError):
            pass
        finally:
            transport.close()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True, name="demo-ssh")
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(ACCEPT_TIMEOUT * 10)
