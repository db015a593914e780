"""What a port scan concludes about one endpoint, in nmap's vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

Endpoint = tuple[str, int]

# ICMP destination-unreachable codes (RFC 792, RFC 1812) under the names nmap gives them.
UNREACHABLE_CODES = {
    0: "net-unreach",
    1: "host-unreach",
    2: "proto-unreach",
    3: "port-unreach",
    4: "needfrag",
    5: "source-route-failed",
    6: "net-unknown",
    7: "host-unknown",
    9: "net-prohibited",
    10: "host-prohibited",
    11: "net-tos-unreach",
    12: "host-tos-unreach",
    13: "admin-prohibited",
    14: "host-precedence-violation",
    15: "precedence-cutoff",
}
ICMPV6_UNREACHABLE_CODES = {
    0: "no-route",
    1: "admin-prohibited",
    2: "beyond-scope",
    3: "addr-unreach",
    4: "port-unreach",
    5: "policy-fail",
    6: "reject-route",
}


@dataclass(frozen=True, slots=True)
class IcmpError:
    type: int
    code: int
    meaning: str
    source: str

    @classmethod
    def unreachable(cls, code: int, source: str, version: int = 4) -> IcmpError:
        names = ICMPV6_UNREACHABLE_CODES if version == 6 else UNREACHABLE_CODES
        return cls(1 if version == 6 else 3, code, names.get(code, f"code-{code}"), source)


@dataclass(frozen=True, slots=True)
class PortVerdict:
    state: str
    reason: str
    method: str
    rtt_ms: float | None
    probes: int
    icmp: IcmpError | None = None
    # How long the first probe was given before the retry was sent (None when no retry was needed).
    retry_after_ms: float | None = None


@dataclass(frozen=True, slots=True)
class EchoResult:
    """ICMP echo, kept as evidence only: many hosts drop ping and are still ready."""

    replied: bool
    rtt_ms: float | None = None
