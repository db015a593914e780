"""tcp/<port>: every port the product needs must be open (forwarded) on the host's address."""

from __future__ import annotations

import errno
import socket
import time

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target

REQUIREMENT = "TCP {port} must be open to the internet, or forwarded to the system, for {purpose}."

_UNREACHABLE_REASONS = {
    errno.EHOSTUNREACH: "host-unreach",
    errno.ENETUNREACH: "net-unreach",
    errno.EACCES: "admin-prohibited",
    errno.EPERM: "admin-prohibited",
}


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


def connect_state(ip: str, port: int, deadline: Deadline) -> tuple[str, str, float | None]:
    """(state, reason, rtt_ms) of one TCP connect(), in nmap's words."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(deadline.cap(deadline.remaining()))
        started = time.perf_counter()
        try:
            sock.connect((ip, port))
        except ConnectionRefusedError:
            return "closed", "conn-refused", _elapsed_ms(started)
        except TimeoutError:
            return "filtered", "no-response", None
        except OSError as exc:
            if exc.errno in _UNREACHABLE_REASONS:
                return "filtered", _UNREACHABLE_REASONS[exc.errno], _elapsed_ms(started)
            raise
        return "open", "syn-ack", _elapsed_ms(started)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def run(target: Target, deadline: Deadline) -> Finding:
    ip, port = target.endpoint()
    purpose = target.purpose
    state, reason, rtt_ms = connect_state(ip, port, deadline)
    evidence = {"ip": ip, "port": port, "state": state, "reason": reason, "rtt_ms": rtt_ms, "method": "connect"}
    if state == "open":
        return Finding(Status.PASS, f"TCP {port} is open: {purpose}", evidence)
    if state == "closed":
        return Finding(
            Status.FAIL,
            f"TCP {port} is closed: {ip} refused the connection",
            evidence,
            f"TCP {port} is closed: the address answered, but nothing accepts connections on it. "
            f"Forward TCP {port} on your router or firewall to the system's LAN address, and make sure the service "
            f"is running on the system ({purpose}).",
        )
    waited = "no answer before the deadline" if reason == "no-response" else f"the network answered {reason}"
    return Finding(
        Status.FAIL,
        f"TCP {port} is filtered: {waited}",
        evidence,
        f"TCP {port} is filtered: forward TCP {port} on your router or firewall to the system's LAN "
        "address and allow it in every firewall on the way; if your provider filters traffic, ask them to open it. "
        f"Support needs it for {purpose}.",
    )
