"""public-ip: every address the host's name resolves to (A and AAAA) must be globally routable."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.resolution import records_by_type
from preflight.target import Target

REQUIREMENT = "Support connects from the internet, so the host's address must be public (globally routable)."

GLOBAL = "global"
PRIVATE = "private (RFC 1918)"
CARRIER_GRADE_NAT = "carrier-grade NAT (RFC 6598)"
LOOPBACK = "loopback"
LINK_LOCAL = "link-local"
UNIQUE_LOCAL = "unique-local (IPv6)"
DOCUMENTATION = "documentation"
BENCHMARKING = "benchmarking"
MULTICAST = "multicast"
RESERVED = "reserved"

# The IANA special-purpose registries, plus the ranges that Python 3.11's `is_global` still calls global.
_IPV4_CLASSES = (
    ("0.0.0.0/8", RESERVED),
    ("10.0.0.0/8", PRIVATE),
    ("100.64.0.0/10", CARRIER_GRADE_NAT),
    ("127.0.0.0/8", LOOPBACK),
    ("169.254.0.0/16", LINK_LOCAL),
    ("172.16.0.0/12", PRIVATE),
    ("192.0.0.0/24", RESERVED),
    ("192.0.2.0/24", DOCUMENTATION),
    ("192.88.99.0/24", RESERVED),
    ("192.168.0.0/16", PRIVATE),
    ("198.18.0.0/15", BENCHMARKING),
    ("198.51.100.0/24", DOCUMENTATION),
    ("203.0.113.0/24", DOCUMENTATION),
    ("224.0.0.0/4", MULTICAST),
    ("240.0.0.0/4", RESERVED),
)
_IPV6_CLASSES = (
    ("::/128", RESERVED),
    ("::1/128", LOOPBACK),
    ("64:ff9b:1::/48", RESERVED),
    ("100::/64", RESERVED),
    ("2001::/23", RESERVED),
    ("2001:2::/48", BENCHMARKING),
    ("2001:db8::/32", DOCUMENTATION),
    ("3fff::/20", DOCUMENTATION),
    ("fc00::/7", UNIQUE_LOCAL),
    ("fe80::/10", LINK_LOCAL),
    ("fec0::/10", RESERVED),
    ("ff00::/8", MULTICAST),
)
_NETWORKS = tuple((ipaddress.ip_network(network), name) for network, name in _IPV4_CLASSES + _IPV6_CLASSES)
_GLOBAL_UNICAST_IPV6 = ipaddress.IPv6Network("2000::/3")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class AddressClass:
    """Whether an address is global, and if not, the special-purpose range that holds it."""

    name: str
    network: str | None = None
    embedded_ipv4: str | None = None
    embedding: str = ""

    @property
    def is_global(self) -> bool:
        return self.name == GLOBAL

    def describe(self, address: str) -> str:
        """`address is <class>`, naming the IPv4 address inside an IPv4-mapped, NAT64 or 6to4 address."""
        if self.embedded_ipv4 is not None:
            return f"{address} is {self.embedding} {self.embedded_ipv4}, {self.name}"
        return f"{address} is {self.name}"


def classify(address: str) -> AddressClass:
    """Which class of address `address` is: `global`, or the special-purpose range it lies in."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            embedding, ipv4 = embedded
            inner = classify(str(ipv4))
            return AddressClass(inner.name, inner.network, str(ipv4), embedding)
    matches = [(network, name) for network, name in _NETWORKS if ip.version == network.version and ip in network]
    if matches:
        network, name = max(matches, key=lambda match: match[0].prefixlen)
        return AddressClass(name, str(network))
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST_IPV6:
        return AddressClass(RESERVED)
    return AddressClass(GLOBAL) if ip.is_global else AddressClass(RESERVED)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    # These IPv6 addresses carry an IPv4 address, and reach whatever that IPv4 address reaches.
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64_WELL_KNOWN:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    return None


def address_class(address: str) -> str:
    """`global`, or the name of the special-purpose range that holds `address`."""
    return classify(address).name


def plan(host: Host, profile: Profile) -> list[Target]:
    return [Target(check_id="public-ip", requirement=REQUIREMENT, host=host, profile=profile)]


def run(target: Target, deadline: Deadline) -> Finding:
    host = target.host
    addresses = list(target.addresses)
    records = records_by_type(addresses)
    evidence: dict[str, object] = {"address": host.address, "resolved": addresses, "records": records}
    if not addresses:
        return Finding(
            Status.FAIL,
            target.resolution_error or f"{host.address} does not resolve",
            evidence | {"error": target.resolution_error},
            f"Check the spelling of {host.address} and that its DNS has an A or AAAA record for the system's public "
            f"IP address (from outside your network: dig +short A {host.address}; dig +short AAAA {host.address}), "
            "or give support the public IP address instead.",
        )
    classes = {address: classify(address) for address in addresses}
    evidence["classes"] = {address: found.name for address, found in classes.items()}
    evidence["ranges"] = {address: found.network for address, found in classes.items() if not found.is_global}
    public = [address for address, found in classes.items() if found.is_global]
    not_public = {address: found for address, found in classes.items() if not found.is_global}
    if not not_public:
        return Finding(Status.PASS, _public_summary(public), evidence)
    described = "; ".join(found.describe(address) for address, found in not_public.items())
    ports = ", ".join(str(required.port) for required in target.profile.ports)
    if public:
        summary = f"{host.address} resolves to addresses that are not public: {described} (public: {', '.join(public)})"
        remediation = (
            f"Remove the DNS records of {', '.join(not_public)} from {host.address}: support may connect to any "
            f"address the name resolves to. Or give support the public IP address {public[0]} instead."
        )
    else:
        summary = f"not a public address: {described}"
        remediation = (
            f"Give support the public IP address of this {target.profile.title} system (or a DNS name that resolves "
            f"only to it), on which TCP {ports} are forwarded to the system. "
            "A private address cannot be reached from the internet."
        )
    if not host.require_public_ip:
        return Finding(
            Status.WARN,
            f"{summary}; accepted because require_public_ip is false",
            evidence,
            remediation + " This host sets require_public_ip: false, so this is only a warning.",
        )
    return Finding(Status.FAIL, summary, evidence, remediation)


def _public_summary(public: list[str]) -> str:
    summary = f"{', '.join(public)} {'is' if len(public) == 1 else 'are'} public"
    if all(ipaddress.ip_address(address).version == 6 for address in public):
        summary += " (IPv6 only: support needs IPv6 to reach it)"
    return summary
