"""The SYN engine's packets, packed and read with struct, against scapy's own building and dissection."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Raw

from preflight.portscan.syn import QuotedProbe, echo_request, syn_packet, unreachable_probe


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
