"""The SYN engine's packets, packed and read with struct, against scapy's own building and dissection."""

from __future__ import annotations

import random
import socket

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Raw

from preflight.portscan.syn import QuotedProbe, echo_request, route, syn_packet, unreachable_probe
from preflight.resolution import source_address
from tests.requirements import need


def _random_syn(chooser: random.Random) -> tuple[str, str, int, int, int]:
    def address() -> str:
        return ".".join(str(chooser.randrange(256)) for _ in range(4))

    return address(), address(), chooser.randrange(65536), chooser.randrange(65536), chooser.randrange(1 << 32)


def test_syns_from_the_template_are_what_scapy_builds_for_any_addresses_ports_and_sequence() -> None:
    chooser = random.Random(2020)  # noqa: S311 - reproducible inputs, not a secret
    for _ in range(500):
        source, destination, source_port, port, sequence = _random_syn(chooser)
        expected = IP(src=source, dst=destination, flags="DF", ttl=64, id=0) / TCP(
            sport=source_port, dport=port, seq=sequence, flags="S", window=1024, options=[("MSS", 1460)]
        )

        packet = syn_packet(source, destination, source_port, port, sequence)

        # The kernel fills in the IP checksum (IP_HDRINCL): everything else is scapy's, byte for byte.
        assert packet[:10] + packet[12:] == bytes(expected)[:10] + bytes(expected)[12:]


def test_the_echo_request_is_what_scapy_builds() -> None:
    assert echo_request(4242) == bytes(ICMP(type=8, id=4242, seq=1) / Raw(b"preflight echo"))


def _unreachable(quoted: bytes, code: int = 13) -> bytes:
    return bytes(IP(src="203.0.113.1", dst="198.18.0.1") / ICMP(type=3, code=code) / Raw(quoted))


def test_an_icmp_unreachable_quoting_a_syn_names_the_probe_as_scapy_dissects_it() -> None:
    message = _unreachable(syn_packet("198.18.0.1", "198.19.1.1", 40000, 2020, 0xDEADBEEF))
    dissected = IP(message)

    probe = unreachable_probe(message, len(message))

    assert probe == QuotedProbe(
        code=dissected[ICMP].code,
        sender=dissected.src,
        source_port=dissected[ICMP].payload.sport,
        ip=dissected[ICMP].payload.dst,
        port=dissected[ICMP].payload.dport,
        sequence=dissected[ICMP].payload.seq,
    )
    assert probe == QuotedProbe(13, "203.0.113.1", 40000, "198.19.1.1", 2020, 0xDEADBEEF)


def test_a_quote_with_ip_options_and_only_eight_tcp_bytes_is_still_read() -> None:
    quoted_ip = IP(src="198.18.0.1", dst="198.19.1.1", options=[b"\x01\x01\x01\x00"], proto=6)
    syn = bytes(TCP(sport=40000, dport=443, seq=7, flags="S"))[:8]
    message = _unreachable(bytes(quoted_ip / Raw(syn)), code=1)

    assert unreachable_probe(message, len(message)) == QuotedProbe(1, "203.0.113.1", 40000, "198.19.1.1", 443, 7)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(bytes(IP(src="203.0.113.1") / ICMP(type=0, id=1, seq=1)), id="echo-reply"),
        pytest.param(
            bytes(IP(src="203.0.113.1") / ICMP(type=3, code=3) / IP(dst="198.19.1.1") / UDP(sport=40000, dport=53)),
            id="quotes-udp",
        ),
        pytest.param(_unreachable(syn_packet("198.18.0.1", "198.19.1.1", 40000, 2020, 1)[:24]), id="quote-cut-short"),
    ],
)
def test_anything_but_an_unreachable_quoting_tcp_names_no_probe(message: bytes) -> None:
    assert unreachable_probe(message, len(message)) is None


# Documentation ranges (RFC 5737): a UDP connect() only asks the routing table, so nothing is sent to them.
OFF_MACHINE = ("192.0.2.1", "198.51.100.1", "203.0.113.1")


def test_each_host_gets_the_source_address_the_kernel_routes_from_whatever_host_came_before() -> None:
    routed = [address for address in OFF_MACHINE if source_address(address) is not None]
    need(bool(routed), "a route off this machine (a default route), to tell its source address from 127.0.0.1")
    off_machine = routed[0]

    loopback = route("127.0.0.1")
    after_loopback = route(off_machine)

    assert loopback is not None and after_loopback is not None
    assert socket.inet_ntoa(loopback[1]) == "127.0.0.1"
    # The control: what a socket of its own finds for that address, and it is not loopback's.
    assert socket.inet_ntoa(after_loopback[1]) == source_address(off_machine) != "127.0.0.1"
    assert after_loopback[0] == socket.inet_aton(off_machine)
