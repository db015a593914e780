"""Port states against real sockets on loopback, with both scan methods; the firewall states are lab tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP

from preflight.portscan import scan
from preflight.portscan.syn import syn_packet
from tests.requirements import needs_raw_sockets

METHODS = ["connect", pytest.param("syn", marks=needs_raw_sockets)]


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


@pytest.mark.parametrize("method", METHODS)
def test_listening_port_is_open_with_syn_ack_reason(method: str, listening_port: int) -> None:
    verdict = scan([("127.0.0.1", listening_port)], 5, method).ports[("127.0.0.1", listening_port)]

    assert (verdict.state, verdict.reason, verdict.method, verdict.probes) == ("open", "syn-ack", method, 1)
    assert verdict.rtt_ms is not None and verdict.rtt_ms >= 0


@pytest.mark.parametrize("method", METHODS)
def test_port_with_no_listener_is_closed_with_reset_reason(method: str, closed_port: int) -> None:
    verdict = scan([("127.0.0.1", closed_port)], 5, method).ports[("127.0.0.1", closed_port)]

    assert (verdict.state, verdict.reason, verdict.method) == ("closed", "reset", method)


@needs_raw_sockets
def test_syn_scan_also_sends_an_icmp_echo_and_keeps_the_reply_as_evidence(listening_port: int) -> None:
    result = scan([("127.0.0.1", listening_port)], 5, "syn")

    assert result.echo["127.0.0.1"].replied


def test_ipv6_endpoints_are_scanned_with_connect_whatever_the_method() -> None:
    with socket.socket(socket.AF_INET6) as server:
        try:
            server.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback address")
        server.listen()
        port = server.getsockname()[1]
        verdict = scan([("::1", port)], 5, "auto").ports[("::1", port)]

    assert (verdict.state, verdict.reason, verdict.method) == ("open", "syn-ack", "connect")


def test_every_endpoint_gets_one_verdict_when_many_share_a_scan(listening_port: int, closed_port: int) -> None:
    endpoints = [("127.0.0.1", listening_port), ("127.0.0.1", closed_port)] * 3 + [
        (f"127.0.0.{index}", closed_port) for index in range(2, 200)
    ]

    ports = scan(endpoints, 5, "connect").ports

    assert set(ports) == set(endpoints)
    assert ports[("127.0.0.1", listening_port)].state == "open"
    assert {ports[endpoint].state for endpoint in endpoints[6:]} == {"closed"}


def test_the_syn_probe_is_what_scapy_dissects_with_a_valid_checksum() -> None:
    packet = syn_packet("198.18.0.1", "198.18.7.9", 40000, 2020, 0xDEADBEEF)

    ip = IP(packet)
    tcp = ip[TCP]
    assert (ip.src, ip.dst, ip.proto, ip.ttl, ip.flags.DF) == ("198.18.0.1", "198.18.7.9", 6, 64, True)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, str(tcp.flags)) == (40000, 2020, 0xDEADBEEF, 0, "S")
    assert tcp.options == [("MSS", 1460)]
    received_checksum = tcp.chksum
    del tcp.chksum
    assert IP(bytes(ip))[TCP].chksum == received_checksum


def test_scan_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown scan method"):
        scan([], 1, "udp")
