"""Classifying addresses: which are public, and the name of every range that is not."""

from __future__ import annotations

import pytest

from preflight.probes.public_ip import address_class


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", "global"),
        ("2606:4700:4700::1111", "global"),
        ("10.1.2.3", "private (RFC 1918)"),
        ("172.16.0.1", "private (RFC 1918)"),
        ("172.31.255.254", "private (RFC 1918)"),
        ("192.168.1.10", "private (RFC 1918)"),
        ("100.64.0.1", "carrier-grade NAT (RFC 6598)"),
        ("100.127.255.254", "carrier-grade NAT (RFC 6598)"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "unique-local (IPv6)"),
        ("192.0.2.5", "documentation"),
        ("198.51.100.5", "documentation"),
        ("203.0.113.5", "documentation"),
        ("2001:db8::5", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.1", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.1.2.3", "reserved"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::ffff:192.168.1.1", "private (RFC 1918)"),
        ("::ffff:8.8.4.4", "global"),
    ],
)
def test_address_class_names_the_range(address: str, expected: str) -> None:
    assert address_class(address) == expected
