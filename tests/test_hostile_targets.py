"""Broken and hostile servers on loopback: each gets its own status within the deadline, never a hang."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.probes import gui_login, ssh_root
from preflight.profiles import RequiredPort, load_profiles
from preflight.target import Target
from tests.deadlines import within_deadline
from tests.loopback import loopback_server

PROFILES = load_profiles()
DEADLINE_SECONDS = 2.0
# What a probe may take beyond its deadline: closing sockets and threads.
SLACK_SECONDS = 1.0
ROOT_PASSWORD = "hostile-test-root-secret"
GUI_PASSWORD = "hostile-test-gui-secret"

Behaviour = Callable[[socket.socket], None]


def _tarpit(connection: socket.socket) -> None:
    time.sleep(DEADLINE_SECONDS + SLACK_SECONDS)


def _http_server(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def _junk_flood(connection: socket.socket) -> None:
    ends_at = time.monotonic() + DEADLINE_SECONDS + SLACK_SECONDS
    while time.monotonic() < ends_at:
        connection.sendall(b"\x00junk junk junk\r\n" * 64)


def _banner_then_reset(connection: socket.socket) -> None:
    connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    connection.recv(64)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _slow_http(connection: socket.socket) -> None:
    connection.recv(4096)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    ends_at = time.monotonic() + DEADLINE_SECONDS + SLACK_SECONDS
    while time.monotonic() < ends_at:
        connection.sendall(b"<")
        time.sleep(0.1)


@pytest.fixture
def hostile_server(request: pytest.FixtureRequest) -> Iterator[int]:
    behaviour: Behaviour = request.param
    with loopback_server(behaviour, DEADLINE_SECONDS + SLACK_SECONDS) as port:
        yield port


def _target(kind: str, port: int) -> Target:
    host = Host.model_validate(
        {
            "name": "hostile",
            "product": "pbxware",
            "address": "127.0.0.1",
            "ssh": {"root_password": ROOT_PASSWORD},
            "gui": {"username": "admin", "password": GUI_PASSWORD},
        },
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )
    return Target(f"{kind}/{port}", "r", host, PROFILES["pbxware"], port=port, ip="127.0.0.1", addresses=("127.0.0.1",))


def _plain_http_gui_target(port: int) -> Target:
    """A gui-login target whose profile declares `port` as a plain-HTTP GUI port, as the stand-in servers speak."""
    target = _target("gui-login", port)
    plain_http = RequiredPort(port=port, service="http", purpose="Web GUI (HTTP)")
    # The stand-ins speak plain HTTP, which the inventory must allow before a password is sent over it.
    gui = target.host.gui.model_copy(update={"allow_plain_http": True})
    return replace(
        target,
        host=target.host.model_copy(update={"gui": gui}),
        profile=target.profile.model_copy(update={"ports": (*target.profile.ports, plain_http)}),
    )


def _timed(run: Callable[[Target, Deadline], Finding], target: Target) -> tuple[Finding, float]:
    started = time.monotonic()
    finding = run(target, Deadline(DEADLINE_SECONDS))
    return finding, time.monotonic() - started


@pytest.mark.parametrize(
    ("hostile_server", "expected"),
    [
        (_tarpit, "no answer within the deadline during banner exchange"),
        (_http_server, "SSH banner exchange failed"),
        (_junk_flood, "SSH banner exchange failed"),
        (_banner_then_reset, "SSH key exchange failed"),
    ],
    indirect=["hostile_server"],
    ids=["tarpit", "http-on-ssh-port", "junk-flood", "reset-mid-handshake"],
)
@pytest.mark.deadline
def test_ssh_root_against_a_hostile_server_fails_within_its_deadline(hostile_server: int, expected: str) -> None:
    finding, elapsed = _timed(ssh_root.run, _target("ssh-root", hostile_server))

    assert finding.status is Status.FAIL
    assert expected in finding.summary
    assert finding.remediation
    assert ROOT_PASSWORD not in repr(finding)
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


@pytest.mark.parametrize(
    ("hostile_server", "expected"),
    [
        (_tarpit, "did not answer in time"),
        (_slow_http, "did not answer in time"),
        (_http_server, "no login form found"),
    ],
    indirect=["hostile_server"],
    ids=["tarpit", "trickling-body", "no-login-form"],
)
@pytest.mark.deadline
def test_gui_login_against_a_hostile_server_fails_within_its_deadline(hostile_server: int, expected: str) -> None:
    finding, elapsed = _timed(gui_login.run, _plain_http_gui_target(hostile_server))

    assert finding.status is Status.FAIL
    assert expected in finding.summary
    assert GUI_PASSWORD not in repr(finding)
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


def test_gui_login_never_sends_the_password_to_a_form_on_another_host() -> None:
    with socket.socket() as elsewhere, socket.socket() as gui:
        elsewhere.bind(("127.0.0.2", 0))
        elsewhere.listen()
        elsewhere.settimeout(0.5)
        gui.bind(("127.0.0.1", 0))
        gui.listen()
        page = (
            f'<form method="post" action="http://127.0.0.2:{elsewhere.getsockname()[1]}/steal">'
            '<input name="user"><input type="password" name="pass"></form>'
        ).encode()

        def serve_form() -> None:
            connection, _ = gui.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(page), page)
                )

        server = threading.Thread(target=serve_form, daemon=True)
        server.start()
        finding, _ = _timed(gui_login.run, _plain_http_gui_target(gui.getsockname()[1]))
        server.join(5)

        assert finding.status is Status.FAIL
        assert "points to another host (127.0.0.2:" in finding.summary
        with pytest.raises(TimeoutError):
            elsewhere.accept()
