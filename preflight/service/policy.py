"""What the service may probe and how often: it is a readiness checker, not a scanner for hire.

Only globally routable addresses are probed, unless the operator allows a range with --allow-targets. A name is
resolved once here and its addresses pinned for the probes, so a DNS answer cannot change in between.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from preflight.deadline import Deadline
from preflight.probes.public_ip import classify
from preflight.resolution import resolve
from preflight.service.store import Store, utc_now

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A string inet_aton would take but that is not a dotted quad: 2130706433, 0x7f.1, 017700000001, 127.1.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
RESOLVE_SECONDS = 5.0


class Refused(Exception):
    """A target the service will not probe, with the one-line reason the client is told."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """The --allow-targets list: CIDR ranges (or single addresses), comma-separated; ValueError names the bad one."""
    networks = []
    for part in (item.strip() for item in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address range such as 198.51.100.0/24") from None
    return tuple(networks)


def own_addresses() -> frozenset[str]:
    """Every address of this machine's interfaces: the service never probes itself."""
    import psutil

    found = set()
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.add(str(ipaddress.ip_address(address.address.split("%", 1)[0])))
    return frozenset(found)


def other_spelling(value: str) -> str | None:
    """The dotted address that a numeric, octal, hex or shortened IPv4 spelling stands for; None for others."""
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if not _NUMERIC_HOST.match(value):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(value.rstrip(".")))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    allowed: tuple[Network, ...] = ()
    own: frozenset[str] = frozenset()

    def addresses_for(self, value: str) -> tuple[str, ...]:
        """The addresses to probe for `value` (an address or a DNS name); Refused says why none may be."""
        if "%" not in value:
            try:
                ip = ipaddress.ip_address(value)
            except ValueError:
                pass
            else:
                # An address is its own resolution, and no other spelling of one: parsed once, not three times
                # (intake takes 1,000 hosts in a few hundredths of a second less).
                self._judge(ip, value)
                return (str(ip),)
        spelled = other_spelling(value)
        if spelled is not None:
            raise Refused(f"{value} is another way of writing the IPv4 address {spelled}; write it as {spelled}")
        resolution = resolve(value, Deadline(RESOLVE_SECONDS))
        if resolution.error:
            raise Refused(resolution.error)
        if not resolution.addresses:
            raise Refused(f"{value} has no address")
        for address in resolution.addresses:
            self.judge(address, value)
        return resolution.addresses

    def in_allowed_range(self, address: str) -> bool:
        """Whether the operator allowed a range holding `address` (and it is not public anyway)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        inside = any(ip.version == network.version and ip in network for network in self.allowed)
        return inside and not classify(str(ip)).is_global

    def judge(self, address: str, asked: str) -> None:
        """Refused unless `address` is global, or inside a range the operator allowed; never this machine."""
        self._judge(ipaddress.ip_address(address.split("%", 1)[0]), asked)

    def _judge(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, asked: str) -> None:
        if any(ip.version == network.version and ip in network for network in self.allowed):
            return
        kind = classify(str(ip))

        def literal() -> bool:
            """Whether `asked` is the address itself: for the message only (parsing it again cost a sixth of intake)."""
            return other_spelling(asked) is None and _same_address(asked, ip)

        if not kind.is_global:
            described = kind.describe(str(ip)).split(" is ", 1)[1]
            seen = kind.describe(asked) if literal() else f"{asked} resolves to {ip}, which is {described}"
            raise Refused(f"{seen}: this service checks only public addresses")
        if str(ip) in self.own:
            seen = asked if literal() else f"{asked} resolves to {ip}, which"
            raise Refused(f"{seen} is an address of this service itself")


def _same_address(text: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]) == ip
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Limits:
    per_client: int = 10
    per_target: int = 6
    window: timedelta = timedelta(hours=1)


class RateLimited(Exception):
    """Over a per-hour limit; `retry_after` is the seconds until the oldest counted check leaves the window."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def check_rates(store: Store, limits: Limits, client: str | None, addresses: Iterable[str]) -> None:
    """Raise RateLimited when the client, or any target, already had its checks this hour."""
    targets = list(dict.fromkeys(addresses))
    # One query for the client and every target: this runs for each submission, under the submission lock.
    (count, oldest), by_address = store.counts_in_window(client, targets, limits.window)
    if client is not None and count >= limits.per_client:
        raise RateLimited(
            f"this address has asked for {count} checks in the last hour (limit {limits.per_client})",
            _retry_after(oldest, limits.window),
        )
    for address in targets:
        count, oldest = by_address[address]
        if count >= limits.per_target:
            raise RateLimited(
                f"{address} was checked {count} times in the last hour (limit {limits.per_target})",
                _retry_after(oldest, limits.window),
            )


def _retry_after(oldest: datetime | None, window: timedelta) -> int:
    if oldest is None:
        return int(window.total_seconds())
    return max(1, math.ceil((oldest + window - utc_now()).total_seconds()))
