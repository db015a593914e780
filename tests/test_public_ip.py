"""public-ip: which addresses are public, the name of every range that is not, and the verdict on every kind of name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.probes.public_ip import address_class, classify, plan, run
from preflight.profiles import load_profiles
from preflight.resolution import Resolution, resolve
from preflight.target import Target


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
        ("192.0.0.100", "reserved"),
        ("192.88.99.1", "reserved"),
        ("::", "reserved"),
        ("100::1", "reserved"),
        ("2001::1", "reserved"),
        ("2001:2::1", "benchmarking"),
        ("3fff::1", "documentation"),
        ("fec0::1", "reserved"),
        ("4000::1", "reserved"),
        ("::10.1.2.3", "reserved"),
        ("64:ff9b:1::1", "reserved"),
        ("fe80::1%eth0", "link-local"),
        ("64:ff9b::10.1.2.3", "private (RFC 1918)"),
        ("64:ff9b::8.8.8.8", "global"),
        ("2002:c0a8:101::1", "private (RFC 1918)"),
        ("2002:808:808::1", "global"),
    ],
)
def test_address_class_names_the_range(address: str, expected: str) -> None:
    assert address_class(address) == expected


def test_embedded_ipv4_is_named_in_the_description() -> None:
    found = classify("64:ff9b::10.1.2.3")

    assert found.network == "10.0.0.0/8"
    assert found.describe("64:ff9b::a01:203") == "64:ff9b::a01:203 is NAT64 10.1.2.3, private (RFC 1918)"


PROFILES = load_profiles()


def _target(addresses: tuple[str, ...], *, require_public_ip: bool = True, error: str = "") -> Target:
    host = Host.model_validate(
        {"name": "h", "product": "pbxware", "address": "pbx.example.test", "require_public_ip": require_public_ip},
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )
    resolution = Resolution(addresses, error)
    (target,) = plan(host, PROFILES["pbxware"])
    return replace(target, ip=resolution.ip, addresses=resolution.addresses, resolution_error=resolution.error)


def _run(addresses: tuple[str, ...], *, require_public_ip: bool = True, error: str = "") -> Finding:
    return run(_target(addresses, require_public_ip=require_public_ip, error=error), Deadline(1))


def test_every_public_address_passes_and_keeps_a_and_aaaa_records_apart() -> None:
    finding = _run(("8.8.8.8", "2001:4860::8888"))

    assert finding.status is Status.PASS
    assert finding.evidence["resolved"] == ["8.8.8.8", "2001:4860::8888"]
    assert finding.evidence["records"] == {"A": ["8.8.8.8"], "AAAA": ["2001:4860::8888"]}
    assert finding.evidence["classes"] == {"8.8.8.8": "global", "2001:4860::8888": "global"}
    assert finding.evidence["ranges"] == {}


def test_public_ipv6_only_passes_and_says_it_is_ipv6_only() -> None:
    target = _target(("2001:4860::8888",))
    finding = run(target, Deadline(1))

    assert finding.status is Status.PASS
    assert "IPv6 only" in finding.summary
    assert target.ip == "2001:4860::8888"


def test_mix_of_public_and_private_addresses_fails_and_names_the_private_one() -> None:
    finding = _run(("8.8.8.8", "10.1.2.3", "fd00::5"))

    assert finding.status is Status.FAIL
    assert finding.summary == (
        "pbx.example.test resolves to addresses that are not public: "
        "10.1.2.3 is private (RFC 1918); fd00::5 is unique-local (IPv6) (public: 8.8.8.8)"
    )
    assert finding.evidence["ranges"] == {"10.1.2.3": "10.0.0.0/8", "fd00::5": "fc00::/7"}
    assert finding.remediation.startswith("Remove the DNS records of 10.1.2.3, fd00::5 from pbx.example.test")
    assert "give support the public IP address 8.8.8.8 instead" in finding.remediation


def test_non_public_address_only_warns_when_a_public_ip_is_not_required() -> None:
    finding = _run(("198.18.0.1",), require_public_ip=False)

    assert finding.status is Status.WARN
    assert "198.18.0.1 is benchmarking" in finding.summary
    assert "require_public_ip: false" in finding.remediation


def test_name_that_does_not_resolve_fails_with_the_resolvers_words() -> None:
    finding = _run((), error="pbx.example.test does not resolve (Name or service not known)")

    assert finding.status is Status.FAIL
    assert finding.summary == "pbx.example.test does not resolve (Name or service not known)"
    assert finding.evidence["records"] == {"A": [], "AAAA": []}
    assert "A or AAAA record" in finding.remediation
    assert "dig +short AAAA pbx.example.test" in finding.remediation


@pytest.mark.parametrize(
    ("addresses", "ip"),
    [
        (("2001:db8::1", "192.0.2.1"), "192.0.2.1"),
        (("2001:db8::1",), "2001:db8::1"),
        ((), None),
    ],
)
def test_probes_use_the_first_ipv4_address_else_the_first_ipv6_one(addresses: tuple[str, ...], ip: str | None) -> None:
    assert Resolution(addresses).ip == ip


@pytest.mark.parametrize("literal", ["192.0.2.1", "2001:db8::1", "fd00::1"])
def test_an_ip_literal_resolves_to_itself_without_a_lookup(literal: str) -> None:
    assert resolve(literal, Deadline(1)).addresses == (literal,)
