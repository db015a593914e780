"""How long to wait for an answer: RFC 6298 round-trip estimates per host, as nmap's adaptive timing keeps them."""

from __future__ import annotations

from dataclasses import dataclass

# A host that has not answered anything yet gets the RFC 6298 initial timeout.
INITIAL_TIMEOUT = 1.0
# Even on a LAN, wait this long for an answer: nmap -T5's --min-rtt-timeout (-T4 waits 100 ms). Answers are timed
# by the kernel and read before any silence is judged, so a busy loop cannot make this floor call a port filtered.
MIN_TIMEOUT = 0.05
MAX_TIMEOUT = 10.0


@dataclass(slots=True)
class RttEstimator:
    smoothed: float | None = None
    variation: float = 0.0
    samples: int = 0

    def record(self, rtt: float) -> None:
        if self.smoothed is None:
            self.smoothed, self.variation = rtt, rtt / 2
        else:
            self.variation = 0.75 * self.variation + 0.25 * abs(self.smoothed - rtt)
            self.smoothed = 0.875 * self.smoothed + 0.125 * rtt
        self.samples += 1

    def timeout(self) -> float | None:
        if self.smoothed is None:
            return None
        return min(MAX_TIMEOUT, max(MIN_TIMEOUT, self.smoothed + 4 * self.variation))


class Timing:
    """Round-trip estimates learned from every answer, per host.

    A host that has not answered yet waits the RFC 6298 initial timeout (or the scan's own, when that is longer):
    other hosts' round trips say nothing about its path, and a fast host's timeout would call a slow one filtered.
    """

    def __init__(self) -> None:
        self._hosts: dict[str, RttEstimator] = {}
        self._scan = RttEstimator()

    def record(self, ip: str, rtt: float) -> None:
        self._hosts.setdefault(ip, RttEstimator()).record(rtt)
        self._scan.record(rtt)

    def timeout(self, ip: str, attempt: int) -> float:
        """How long the `attempt`-th probe (0 first) to `ip` waits.

        A host whose round trip is learned gets the same wait for a retry as for the first probe, as nmap gives it:
        srtt + 4 rttvar already covers its jitter, and doubling would only make each filtered port wait longer. A
        host that has answered nothing yet doubles its initial guess on each retry (RFC 6298's backoff), since that
        guess may be too short for its path.
        """
        host = self._hosts.get(ip)
        learned = host.timeout() if host else None
        if learned is not None:
            return learned
        return max(INITIAL_TIMEOUT, self._scan.timeout() or 0.0) * (1 << attempt)

    def measured(self, ip: str) -> bool:
        """Whether `ip` has answered anything yet, so that its own round trips set its timeouts."""
        return ip in self._hosts

    def smoothed_rtt(self, ip: str) -> float | None:
        host = self._hosts.get(ip)
        return host.smoothed if host else None
