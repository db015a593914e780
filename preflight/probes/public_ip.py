"""public-ip: every address the host's name resolves to must be globally routable."""

from __future__ import annotations

import ipaddress

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target

REQUIREMENT = "Support connects from the internet, so the host's address must be public (globally routable)."

_IPV4_CLASSES = (
    ("0.0.0.0/8", "reserved"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.2.0/24", "documentation"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_IPV6_CLASSES = (
    ("::1/128", "loopback"),
    ("fc00::/7", "unique-local (IPv6)"),
    ("fe80::/10", "link-local"),
    ("2001:db8::/32", "documentation"),
    ("ff00::/8", "multicast"),
)
_NETWORKS = tuple((ipaddress.ip_network(network), name) for network, name in _IPV4_CLASSES + _IPV6_CLASSES)


def address_class(address: str) -> str:
    """`global`, or the name of the special-purpose range that holds `address`."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network, name in _NETWORKS:
        if ip.version == network.version and ip in network:
            return name
    return "global" if ip.is_global else "reserved"


def plan(host: Host, profile: Profile) -> list[Target]:
    return [Target(check_id="public-ip", requirement=REQUIREMENT, host=host, profile=profile)]


def run(target: Target, deadline: Deadline) -> Finding:
    host = target.host
    if not target.addresses:
        return Finding(
            Status.FAIL,
            target.resolution_error or f"{host.address} does not resolve",
            {"address": host.address, "resolved": []},
            f"Check the spelling of {host.address}, or give support the host's public IP address instead.",
        )
    classes = {address: address_class(address) for address in target.addresses}
    evidence = {"address": host.address, "resolved": list(target.addresses), "classes": classes}
    not_public = {address: name for address, name in classes.items() if name != "global"}
    if not not_public:
        return Finding(Status.PASS, f"{', '.join(target.addresses)} is public", evidence)
    described = ", ".join(f"{address} is {name}" for address, name in not_public.items())
    ports = ", ".join(str(required.port) for required in target.profile.ports)
    remediation = (
        f"Give support the public IP address of this {target.profile.title} system (or a DNS name that resolves only "
        f"to it), on which TCP {ports} are forwarded to the system. "
        "A private address cannot be reached from the internet."
    )
    if not host.require_public_ip:
        return Finding(
            Status.WARN,
            f"not a public address: {described}; accepted because require_public_ip is false",
            evidence,
            remediation + " This host sets require_public_ip: false, so this is only a warning.",
        )
    return Finding(Status.FAIL, f"not a public address: {described}", evidence, remediation)
