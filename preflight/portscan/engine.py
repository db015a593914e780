"""The scan loop both methods share: a bounded window of probes in flight, adaptive timeouts, one retry.

A `filtered / no-response` verdict is given only after two probes went unanswered and every answer the
kernel already holds has been read, so a late event loop cannot turn an answer into silence.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from preflight.portscan.timing import MIN_TIMEOUT, Timing
from preflight.portscan.verdict import Endpoint, IcmpError, PortVerdict

PROBES_PER_PORT = 2


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back for one endpoint: a state and reason, and the ICMP error behind it if there was one."""

    state: str
    reason: str
    icmp: IcmpError | None = None
    # Measured by the kernel where it can be (packet timestamps, TCP_INFO), so a busy loop cannot inflate it.
    rtt: float | None = None


@dataclass(slots=True)
class _InFlight:
    first_sent: float
    sent_at: float
    attempt: int = 0
    # How long the first probe waited before the retry went out: evidence that timing followed the host's RTT.
    retry_after: float | None = None


class ScanEngine(ABC):
    method: str

    def __init__(self, timeout: float, window: int) -> None:
        self.timeout = timeout
        self.window = max(1, window)
        self.timing = Timing()
        self.selector = selectors.DefaultSelector()
        self._in_flight: dict[Endpoint, _InFlight] = {}
        self._verdicts: dict[Endpoint, PortVerdict] = {}
        self._timers: list[tuple[float, int, Endpoint, int]] = []
        self._order = itertools.count()
        self._answered_without_probe: list[tuple[Endpoint, Answer]] = []

    @abstractmethod
    def send(self, endpoint: Endpoint, attempt: int) -> bool:
        """Send one probe; False when the prober has no room for it right now (it is queued again)."""

    @abstractmethod
    def read(self, key: selectors.SelectorKey) -> Iterable[tuple[Endpoint, Answer]]:
        """Everything the ready file object holds, as answers; answers for unknown endpoints are ignored."""

    @abstractmethod
    def release(self, endpoint: Endpoint) -> None:
        """Free what the endpoint's probes hold (sockets); called once its verdict is in."""

    def close(self) -> None:
        self.selector.close()

    def scan(self, endpoints: Sequence[Endpoint]) -> dict[Endpoint, PortVerdict]:
        queue = deque(dict.fromkeys(endpoints))
        # Every port finishes within `timeout` of its first probe; this only catches a bug, it never decides.
        hard_stop = time.monotonic() + self.timeout * (2 + len(queue) / self.window) + 5
        while (queue or self._in_flight) and time.monotonic() < hard_stop:
            self._fill_window(queue)
            self._wait_and_read()
            self._expire()
        for endpoint in list(queue) + list(self._in_flight):
            raise RuntimeError(f"scan loop stopped with {endpoint[0]}:{endpoint[1]} unresolved")
        return self._verdicts

    def in_flight(self, endpoint: Endpoint) -> bool:
        return endpoint in self._in_flight

    def sent_at(self, endpoint: Endpoint) -> float | None:
        """When the latest probe to `endpoint` left, on the time.monotonic() clock."""
        probe = self._in_flight.get(endpoint)
        return probe.sent_at if probe else None

    def _fill_window(self, queue: deque[Endpoint]) -> None:
        while queue and len(self._in_flight) < self.window:
            endpoint = queue[0]
            now = time.monotonic()
            if not self.send(endpoint, 0):
                return
            queue.popleft()
            self._in_flight[endpoint] = _InFlight(first_sent=now, sent_at=now)
            self._arm(endpoint, 0, now + MIN_TIMEOUT)

    def _arm(self, endpoint: Endpoint, attempt: int, at: float) -> None:
        heapq.heappush(self._timers, (at, next(self._order), endpoint, attempt))

    def answer_without_probe(self, endpoint: Endpoint, answer: Answer) -> None:
        """For an endpoint this machine refused to send to (no route, own firewall): its answer, given locally."""
        self._answered_without_probe.append((endpoint, answer))

    def _wait_and_read(self) -> None:
        if self._answered_without_probe:
            answered, self._answered_without_probe = self._answered_without_probe, []
            self._accept(answered)
        wait = max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else 0.05
        for key, _ in self.selector.select(timeout=min(wait, 0.05) if not self._in_flight else wait):
            self._accept(self.read(key))

    def _drain(self) -> None:
        for _ in range(10_000):
            ready = self.selector.select(timeout=0)
            if not ready:
                return
            for key, _ in ready:
                self._accept(self.read(key))

    def _accept(self, answers: Iterable[tuple[Endpoint, Answer]]) -> None:
        now = time.monotonic()
        for endpoint, answer in answers:
            probe = self._in_flight.pop(endpoint, None)
            if probe is None:
                continue
            rtt = answer.rtt if answer.rtt is not None else now - probe.sent_at
            if probe.attempt == 0:
                # Karn's rule: an answer after a retry could belong to either probe, so it teaches nothing.
                self.timing.record(endpoint[0], rtt)
            self._finish(endpoint, answer.state, answer.reason, probe.attempt + 1, rtt, answer.icmp, probe.retry_after)

    def _finish(
        self,
        endpoint: Endpoint,
        state: str,
        reason: str,
        probes: int,
        rtt: float | None,
        icmp: IcmpError | None,
        retry_after: float | None = None,
    ) -> None:
        rtt_ms = None if rtt is None else round(rtt * 1000, 3)
        retry_after_ms = None if retry_after is None else round(retry_after * 1000, 3)
        self._verdicts[endpoint] = PortVerdict(state, reason, self.method, rtt_ms, probes, icmp, retry_after_ms)
        self.release(endpoint)

    def _expire(self) -> None:
        now = time.monotonic()
        due = []
        while self._timers and self._timers[0][0] <= now:
            _, _, endpoint, attempt = heapq.heappop(self._timers)
            probe = self._in_flight.get(endpoint)
            if probe is not None and probe.attempt == attempt:
                due.append(endpoint)
        if not due:
            return
        # Answers already queued in the kernel count, however late this loop is to read them.
        self._drain()
        for endpoint in due:
            self._timeout_or_retry(endpoint, time.monotonic())

    def _timeout_or_retry(self, endpoint: Endpoint, now: float) -> None:
        probe = self._in_flight.get(endpoint)
        if probe is None:
            return
        last_chance = probe.first_sent + self.timeout
        # Each probe leaves in its share of `timeout`, so even a short --timeout sends the retry before `filtered`.
        own_share = probe.first_sent + self.timeout * (probe.attempt + 1) / PROBES_PER_PORT
        expires = min(probe.sent_at + self.timing.timeout(endpoint[0], probe.attempt), own_share)
        if expires > now:
            # What the host's answers taught us says to wait longer than first thought. A host that has not answered
            # yet is looked at again soon, then less often (its first answers may arrive any moment and shorten the
            # wait; the doubling keeps a scan of silent hosts cheap).
            if self.timing.measured(endpoint[0]):
                self._arm(endpoint, probe.attempt, expires)
            else:
                self._arm(endpoint, probe.attempt, min(expires, now + max(MIN_TIMEOUT, now - probe.sent_at)))
            return
        if probe.attempt + 1 < PROBES_PER_PORT and now < last_chance:
            if not self.send(endpoint, probe.attempt + 1):
                self._arm(endpoint, probe.attempt, now + 0.01)
                return
            probe.attempt += 1
            probe.sent_at = now
            probe.retry_after = now - probe.first_sent
            self._arm(endpoint, probe.attempt, min(now + MIN_TIMEOUT, last_chance))
            return
        del self._in_flight[endpoint]
        self._finish(endpoint, "filtered", "no-response", probe.attempt + 1, None, None, probe.retry_after)
