"""The service's target policy as pure logic: each refused kind of address with its exact reason, and what passes.

No packet is involved: `judge()` is given an address and what the client asked for, and the other spellings of
IPv4 are refused before anything is resolved. The same cases go through a real service in test_service_netns.py.
"""

from __future__ import annotations

import pytest

from preflight.service.policy import Refused, TargetPolicy, other_spelling, parse_networks

LAB = "198.18.77.10"
# Data only: an address the policy is told is the service's own, global so that only the own-address rule refuses it.
OWN_GLOBAL = "1.2.3.4"
OWN_LAB = "198.18.77.1"
POLICY = TargetPolicy(allowed=parse_networks(f"{LAB}/32"), own=frozenset({OWN_GLOBAL, OWN_LAB}))
PUBLIC_ONLY = " this service checks only public addresses"

REFUSED_ADDRESSES = [
    ("127.0.0.1", f"127.0.0.1 is loopback:{PUBLIC_ONLY}"),
    ("::1", f"::1 is loopback:{PUBLIC_ONLY}"),
    ("10.0.0.1", f"10.0.0.1 is private (RFC 1918):{PUBLIC_ONLY}"),
    ("172.16.0.1", f"172.16.0.1 is private (RFC 1918):{PUBLIC_ONLY}"),
    ("192.168.1.1", f"192.168.1.1 is private (RFC 1918):{PUBLIC_ONLY}"),
    ("100.64.0.1", f"100.64.0.1 is carrier-grade NAT (RFC 6598):{PUBLIC_ONLY}"),
    ("169.254.169.254", f"169.254.169.254 is link-local:{PUBLIC_ONLY}"),
    ("fe80::1", f"fe80::1 is link-local:{PUBLIC_ONLY}"),
    ("fe80::1%eth0", f"fe80::1%eth0 is link-local:{PUBLIC_ONLY}"),
    ("fd00::1", f"fd00::1 is unique-local (IPv6):{PUBLIC_ONLY}"),
    ("224.0.0.1", f"224.0.0.1 is multicast:{PUBLIC_ONLY}"),
    ("ff02::1", f"ff02::1 is multicast:{PUBLIC_ONLY}"),
    ("::ffff:127.0.0.1", f"::ffff:127.0.0.1 is IPv4-mapped 127.0.0.1, loopback:{PUBLIC_ONLY}"),
    ("::ffff:169.254.169.254", f"::ffff:169.254.169.254 is IPv4-mapped 169.254.169.254, link-local:{PUBLIC_ONLY}"),
    ("64:ff9b::a9fe:a9fe", f"64:ff9b::a9fe:a9fe is NAT64 169.254.169.254, link-local:{PUBLIC_ONLY}"),
    ("2002:7f00:1::1", f"2002:7f00:1::1 is 6to4 127.0.0.1, loopback:{PUBLIC_ONLY}"),
    # The allowed range is exactly the lab address: its neighbour, and its IPv4-mapped form, are still refused.
    ("198.18.77.11", f"198.18.77.11 is benchmarking:{PUBLIC_ONLY}"),
    (f"::ffff:{LAB}", f"::ffff:{LAB} is IPv4-mapped {LAB}, benchmarking:{PUBLIC_ONLY}"),
    (OWN_LAB, f"{OWN_LAB} is benchmarking:{PUBLIC_ONLY}"),
    (OWN_GLOBAL, f"{OWN_GLOBAL} is an address of this service itself"),
]

REFUSED_NAMES = [
    ("localhost", "127.0.0.1", f"localhost resolves to 127.0.0.1, which is loopback:{PUBLIC_ONLY}"),
    ("localhost", "::1", f"localhost resolves to ::1, which is loopback:{PUBLIC_ONLY}"),
    ("metadata.lab.test", "169.254.169.254",
     f"metadata.lab.test resolves to 169.254.169.254, which is link-local:{PUBLIC_ONLY}"),
    ("self.lab.test", OWN_GLOBAL, f"self.lab.test resolves to {OWN_GLOBAL}, which is an address of this service itself"),
]

OTHER_SPELLINGS = [
    ("2130706433", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0251.0376.0251.0376", "169.254.169.254"),
]


@pytest.mark.parametrize(("address", "reason"), REFUSED_ADDRESSES)
def test_refused_address_says_why_in_one_line(address: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        POLICY.judge(address, address)

    assert str(refused.value) == reason
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(("name", "address", "reason"), REFUSED_NAMES)
def test_name_resolving_to_a_refused_address_names_both(name: str, address: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        POLICY.judge(address, name)

    assert str(refused.value) == reason


@pytest.mark.parametrize(("spelling", "dotted"), OTHER_SPELLINGS)
def test_other_spelling_of_ipv4_is_refused_before_any_lookup(spelling: str, dotted: str) -> None:
    assert other_spelling(spelling) == dotted
    with pytest.raises(Refused) as refused:
        POLICY.addresses_for(spelling)

    assert str(refused.value) == (
        f"{spelling} is another way of writing the IPv4 address {dotted}; write it as {dotted}"
    )


@pytest.mark.parametrize("address", [LAB, "8.8.8.8", "2001:4860:4860::8888"])
def test_allowed_range_and_public_addresses_pass(address: str) -> None:
    """The control: the same judge lets through the operator's lab range and a global address."""
    POLICY.judge(address, address)
    POLICY.judge(address, "pbx.lab.test")


@pytest.mark.parametrize("name", ["pbx.example.com", "127.0.0.1", "::1", "fe80::1", "1.2.3.4"])
def test_names_and_dotted_addresses_are_not_other_spellings(name: str) -> None:
    assert other_spelling(name) is None


def test_allowed_range_counts_only_when_the_address_is_not_public() -> None:
    policy = TargetPolicy(allowed=parse_networks("198.18.0.0/15, 8.8.8.0/24"))

    assert policy.in_allowed_range(LAB)
    assert not policy.in_allowed_range("8.8.8.8")
    assert not policy.in_allowed_range("10.0.0.1")


@pytest.mark.parametrize(("text", "reason"), [
    ("10.0.0.0/33", "'10.0.0.0/33' is not an address range such as 198.51.100.0/24"),
    ("lab", "'lab' is not an address range such as 198.51.100.0/24"),
])
def test_bad_allow_targets_names_the_bad_range(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as bad:
        parse_networks(text)

    assert str(bad.value) == reason
