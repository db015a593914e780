"""Port states for many endpoints at once, in nmap's words, with the reason and the method behind each.

`scan` probes with raw SYNs when the process may open raw sockets and with connect() otherwise (and
always for IPv6). Both methods share one loop (engine.py): a bounded window in flight, round-trip
times learned from every answer, and a retry before any silence is called `filtered`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from preflight.portscan.methods import METHODS, raw_sockets_allowed
from preflight.portscan.verdict import EchoResult, Endpoint, IcmpError, PortVerdict

__all__ = ["METHODS", "EchoResult", "Endpoint", "IcmpError", "PortVerdict", "ScanResult", "raw_sockets_allowed", "scan"]

SYN_WINDOW = 2048
CONNECT_WINDOW = 1024
# After the kernel dropped answers meant for us, silent ports are probed again, fewer at a time on each pass.
CALM_WINDOWS = (64, 8, 1)


@dataclass(frozen=True, slots=True)
class ScanResult:
    ports: Mapping[Endpoint, PortVerdict]
    echo: Mapping[str, EchoResult] = field(default_factory=dict)


def scan(endpoints: Sequence[Endpoint], timeout: float, method: str = "auto") -> ScanResult:
    """The state of every endpoint; each one is settled within `timeout` of its first probe."""
    if method not in METHODS:
        raise ValueError(f"unknown scan method {method!r}")
    if method == "syn" and not raw_sockets_allowed():
        raise PermissionError("SYN probes need raw sockets: run as root or grant CAP_NET_RAW, or use connect")
    use_syn = method == "syn" or (method == "auto" and raw_sockets_allowed())
    ipv4 = [endpoint for endpoint in endpoints if ":" not in endpoint[0]]
    by_connect = [endpoint for endpoint in endpoints if ":" in endpoint[0] or not use_syn]
    ports: dict[Endpoint, PortVerdict] = {}
    echo: dict[str, EchoResult] = {}
    if use_syn and ipv4:
        ports.update(_syn_scan(ipv4, timeout, echo))
    if by_connect:
        from preflight.portscan.connect import ConnectEngine  # the engines load only when a scan runs

        engine = ConnectEngine(timeout, CONNECT_WINDOW)
        try:
            ports.update(engine.scan(by_connect))
        finally:
            engine.close()
    return ScanResult(ports, echo)


def _syn_scan(
    endpoints: Sequence[Endpoint], timeout: float, echo: dict[str, EchoResult]
) -> dict[Endpoint, PortVerdict]:
    from preflight.portscan.syn import SynEngine

    with SynEngine(timeout, SYN_WINDOW) as engine:
        ports = engine.scan(endpoints)
        echo.update(engine.echo)
        overloaded = engine.dropped > 0
        timing = engine.timing
    for window in CALM_WINDOWS:
        silent = [endpoint for endpoint, verdict in ports.items() if verdict.reason == "no-response"]
        if not overloaded or not silent:
            return ports
        # The kernel dropped answers before we read them, so silence proves nothing: ask again, calmly.
        with SynEngine(timeout, window, echo=False) as engine:
            # Each host's round trip, learned from the answers that were read, still holds on the calmer pass.
            engine.timing = timing
            ports.update(engine.scan(silent))
            overloaded = engine.dropped > 0
    if overloaded:
        for endpoint, verdict in ports.items():
            if verdict.reason == "no-response":
                ports[endpoint] = replace(verdict, state="unknown", reason="prober-overloaded")
    return ports
