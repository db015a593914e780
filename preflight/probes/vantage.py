"""vantage: a run from inside the customer's own network proves nothing about port forwarding."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.probes.public_ip import classify
from preflight.profiles import Profile
from preflight.resolution import source_address
from preflight.target import Target

REQUIREMENT = (
    "preflight runs from outside the system's network, as support does; "
    "otherwise its port checks prove nothing about port forwarding."
)
OWN_ADDRESS = "own-address"
SAME_SUBNET = "same-subnet"
PRIVATE_TARGET = "private-target"
REMEDIATION = (
    "Run preflight from a machine outside the system's network, as support connects: for example a cloud VM, "
    "or a laptop on a mobile hotspot, checking the system's public IP address. A run from inside the network "
    "reaches the system directly, so its port checks say nothing about forwarding from the internet."
)

# The prober's addresses are read again after this long: often enough to notice a change, not once per host.
LOCAL_ADDRESSES_TTL_SECONDS = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True, slots=True)
class LocalAddress:
    """One address of the prober, with the interface that holds it and that interface's subnet."""

    interface_name: str
    address: IPInterface


@dataclass(frozen=True, slots=True)
class Sign:
    """One plain sign that the prober sits inside the target's network."""

    code: str
    explanation: str


@dataclass(frozen=True, slots=True)
class Route:
    """How the prober reaches one target address, and what that says about where the prober is."""

    target: str
    source_address: str | None
    source: LocalAddress | None
    signs: tuple[Sign, ...]

    def evidence(self) -> dict[str, Any]:
        return {
            "source_address": self.source_address,
            "source_interface": self.source.interface_name if self.source else None,
            "source_network": str(self.source.address.network) if self.source else None,
            "signs": [sign.code for sign in self.signs],
        }


def plan(host: Host, profile: Profile) -> list[Target]:
    return [Target(check_id="vantage", requirement=REQUIREMENT, host=host, profile=profile)]


def run(target: Target, deadline: Deadline) -> Finding:
    if target.ip is None:
        return Finding(
            Status.SKIPPED,
            f"not attempted: {target.resolution_error or 'the address does not resolve'}",
            {"ip": None},
            "Fix public-ip first: give support an address that resolves.",
        )
    local = prober_addresses()
    routes = {
        address: assess(address, source_address(address), local, target.host.require_public_ip)
        for address in dict.fromkeys((target.ip, *target.addresses))
    }
    return decide(target.ip, routes)


def decide(ip: str, routes: Mapping[str, Route]) -> Finding:
    """The check's verdict from the route to each resolved address; `ip` is the address the port checks use."""
    main = routes[ip]
    signs = list(dict.fromkeys(sign for route in routes.values() for sign in route.signs))
    evidence = {
        "ip": ip,
        **{key: value for key, value in main.evidence().items() if key != "signs"},
        "signs": list(dict.fromkeys(sign.code for sign in signs)),
        "routes": {address: route.evidence() for address, route in routes.items()},
    }
    if signs:
        explained = "; ".join(sign.explanation for sign in signs)
        return Finding(
            Status.WARN,
            f"preflight runs inside the system's network ({explained}), so the port checks prove nothing about "
            "forwarding from the internet",
            evidence,
            REMEDIATION,
        )
    if main.source_address is None:
        return Finding(
            Status.WARN,
            f"could not tell where preflight runs from: this machine has no route to {ip}",
            evidence,
            "Check this machine's network connection (for an IPv6 address, that it has IPv6 connectivity). "
            + REMEDIATION,
        )
    interface = f" on {main.source.interface_name}" if main.source else ""
    return Finding(
        Status.PASS,
        f"no sign that preflight runs inside the system's network: the route to {ip} leaves from "
        f"{main.source_address}{interface}, outside the system's subnet",
        evidence,
    )


def assess(target: str, source: str | None, local: Sequence[LocalAddress], require_public_ip: bool) -> Route:
    """The plain signs that the prober is inside the target's network, from its own addresses and its route's source."""
    target_ip = _unmapped(_address(target))
    source_ip = _unmapped(_address(source)) if source is not None else None
    holder = next((held for held in local if source_ip is not None and held.address.ip == source_ip), None)
    signs = []
    own = next((held for held in local if held.address.ip == target_ip), None)
    if target_ip.is_loopback:
        signs.append(Sign(OWN_ADDRESS, f"{target} is a loopback address of this machine"))
    elif target_ip.is_unspecified:
        signs.append(Sign(OWN_ADDRESS, f"{target} is the unspecified address, which reaches this machine itself"))
    elif own is not None:
        signs.append(Sign(OWN_ADDRESS, f"{target} is this machine's own address on {own.interface_name}"))
    elif holder is not None and target_ip in holder.address.network:
        signs.append(
            Sign(
                SAME_SUBNET,
                f"the route to {target} leaves from {source} on {holder.interface_name}, "
                f"in the same subnet {holder.address.network}",
            )
        )
    found = classify(str(target_ip))
    if require_public_ip and not found.is_global:
        signs.append(
            Sign(
                PRIVATE_TARGET,
                f"{target} is {found.name}, which only a machine inside its network reaches, "
                "and this host requires a public IP",
            )
        )
    return Route(target, source, holder, tuple(signs))


_snapshot: tuple[float, list[LocalAddress]] = (float("-inf"), [])


def prober_addresses() -> list[LocalAddress]:
    """This machine's addresses with their interfaces and subnets, as psutil reports them."""
    global _snapshot
    taken_at, addresses = _snapshot
    if time.monotonic() - taken_at > LOCAL_ADDRESSES_TTL_SECONDS:
        addresses = local_addresses(psutil.net_if_addrs())
        _snapshot = (time.monotonic(), addresses)
    return addresses


def local_addresses(interfaces: Mapping[str, Iterable[Any]]) -> list[LocalAddress]:
    """The prober's IPv4 and IPv6 addresses with their subnets, from `psutil.net_if_addrs()`."""
    found = []
    for interface_name, addresses in interfaces.items():
        for entry in addresses:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = _address(entry.address)
            prefix = bin(int(_address(entry.netmask))).count("1") if entry.netmask else ip.max_prefixlen
            found.append(LocalAddress(interface_name, ipaddress.ip_interface(f"{ip}/{prefix}")))
    return found


def _address(text: str) -> IPAddress:
    # psutil and getsockname write IPv6 link-local addresses with their zone ("fe80::1%eth0").
    return ipaddress.ip_address(text.split("%", 1)[0])


def _unmapped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
