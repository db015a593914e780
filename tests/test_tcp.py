"""tcp/<port> against real sockets on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from preflight.deadline import Deadline
from preflight.probes.tcp import connect_state


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        return int(reserved.getsockname()[1])


def test_listening_port_is_open_with_syn_ack_reason(listening_port: int) -> None:
    state, reason, rtt_ms = connect_state("127.0.0.1", listening_port, Deadline(5))

    assert (state, reason) == ("open", "syn-ack")
    assert rtt_ms is not None and rtt_ms >= 0


def test_port_with_no_listener_is_closed_with_conn_refused_reason(closed_port: int) -> None:
    state, reason, _ = connect_state("127.0.0.1", closed_port, Deadline(5))

    assert (state, reason) == ("closed", "conn-refused")


def test_ipv6_loopback_listener_is_open() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with socket.socket(socket.AF_INET6) as server:
        try:
            server.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback address")
        server.listen()
        state, reason, _ = connect_state("::1", server.getsockname()[1], Deadline(5))

    assert (state, reason) == ("open", "syn-ack")
