"""rtp: the RTP media range (call audio) cannot be proved from outside without a cooperating endpoint.

RTP ports are opened per call, by the call's own signalling: a closed port and a firewall that drops an unasked
datagram look the same, and nothing answers a datagram sent out of the blue. So the range is reported as
`skipped`, with what to do to prove it, never as a pass.
"""

from __future__ import annotations

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target

REQUIREMENT = "UDP {first}-{last} must reach the system for {purpose}."


def plan(host: Host, profile: Profile) -> list[Target]:
    if profile.rtp is None:
        return []
    rtp = profile.rtp
    return [
        Target(
            check_id="rtp",
            requirement=REQUIREMENT.format(first=rtp.first, last=rtp.last, purpose=rtp.purpose),
            host=host,
            profile=profile,
        )
    ]


def run(target: Target, deadline: Deadline) -> Finding:
    rtp = target.profile.rtp
    if rtp is None:
        raise ValueError(f"{target.check_id}: the {target.profile.product} profile has no rtp range")
    ports = f"{rtp.first}-{rtp.last}"
    return Finding(
        Status.SKIPPED,
        f"RTP (UDP {ports}) not tested: only a call can prove it; nothing answers an unasked RTP datagram",
        {"protocol": "udp", "ports": ports, "reason": "needs-a-call"},
        f"Forward UDP {ports} to the system (or let the system's own RTP traffic through the firewall), then prove "
        "it with a test call from outside your network: audio must be heard in both directions. One-way or no "
        "audio means these ports are blocked, or a SIP ALG on the router rewrites the call.",
    )
