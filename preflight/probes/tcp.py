"""tcp/<port>: every port the product needs must be open (forwarded) on the host's address.

All the run's ports are scanned together (preflight/portscan), so a thousand hosts cost about what one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.portscan import EchoResult, PortVerdict, scan
from preflight.profiles import Profile
from preflight.target import Target

REQUIREMENT = "TCP {port} must be open to the internet, or forwarded to the system, for {purpose}."


def plan(host: Host, profile: Profile) -> list[Target]:
    return [
        Target(
            check_id=f"tcp/{required.port}",
            requirement=REQUIREMENT.format(port=required.port, purpose=required.purpose),
            host=host,
            profile=profile,
            port=required.port,
        )
        for required in profile.ports
    ]


def run(target: Target, deadline: Deadline) -> Finding:
    return run_batch([target], deadline.remaining())[0]


def run_batch(targets: Sequence[Target], timeout: float) -> list[Finding]:
    """One finding per target, in order, from a single scan of all their endpoints."""
    methods = {target.options.tcp_method for target in targets} or {"auto"}
    if len(methods) > 1:
        raise ValueError(f"one scan cannot use several methods: {', '.join(sorted(methods))}")
    result = scan([target.endpoint() for target in targets], timeout, methods.pop())
    return [
        finding(target, result.ports[target.endpoint()], result.echo.get(target.endpoint()[0])) for target in targets
    ]


def finding(target: Target, verdict: PortVerdict, echo: EchoResult | None) -> Finding:
    ip, port = target.endpoint()
    purpose = target.purpose
    evidence: dict[str, Any] = {
        "ip": ip,
        "port": port,
        "state": verdict.state,
        "reason": verdict.reason,
        "rtt_ms": verdict.rtt_ms,
        "method": verdict.method,
        "probes": verdict.probes,
        "retry_after_ms": verdict.retry_after_ms,
    }
    if verdict.icmp is not None:
        evidence["icmp"] = {
            "type": verdict.icmp.type,
            "code": verdict.icmp.code,
            "meaning": verdict.icmp.meaning,
            "from": verdict.icmp.source,
        }
    if echo is not None:
        evidence["icmp_echo"] = {"replied": echo.replied, "rtt_ms": echo.rtt_ms}
    if verdict.state == "open":
        return Finding(Status.PASS, f"TCP {port} is open: {purpose}", evidence)
    if verdict.state == "closed":
        return Finding(
            Status.FAIL,
            f"TCP {port} is closed: {ip} answered with a reset",
            evidence,
            f"TCP {port} is closed: the address answered, but nothing accepts connections on it. "
            f"Forward TCP {port} on your router or firewall to the system's LAN address, and make sure the service "
            f"is running on the system. Support needs it for {purpose}.",
        )
    if verdict.state == "unknown":
        return Finding(
            Status.ERROR,
            f"TCP {port} state unknown: this machine dropped answers faster than preflight could read them",
            evidence,
            "preflight's own machine was overloaded, so silence from this port proves nothing. Rerun preflight "
            "when the machine is less busy, or with --tcp-method connect.",
        )
    return Finding(
        Status.FAIL,
        f"TCP {port} is filtered: {_why_filtered(verdict)}",
        evidence,
        f"TCP {port} is filtered: forward TCP {port} on your router or firewall to the system's LAN "
        "address and allow it in every firewall on the way; if your provider filters traffic, ask them to open it. "
        f"Support needs it for {purpose}.",
    )


def _why_filtered(verdict: PortVerdict) -> str:
    if verdict.icmp is not None:
        return (
            f"{verdict.icmp.source} answered ICMP unreachable type {verdict.icmp.type} code {verdict.icmp.code} "
            f"({verdict.icmp.meaning})"
        )
    if verdict.reason == "no-response":
        return (
            f"no answer to {verdict.probes} SYN probes"
            if verdict.method == "syn"
            else (f"no answer to {verdict.probes} connection attempts")
        )
    return f"this machine could not send the probe ({verdict.reason})"
