"""Runs the plan: hosts concurrently, every check under a deadline, no host able to sink the run."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from preflight import __version__
from preflight.deadline import Deadline
from preflight.model import CheckResult, Finding, HostReport, RunReport, RunSummary, Status
from preflight.plan import HostPlan
from preflight.probes import BulkRun, registry
from preflight.redaction import redact
from preflight.resolution import Resolution, resolve, source_address
from preflight.target import Target

_log = logging.getLogger(__name__)
# Told of each check as it ends (host name, result): the service's live progress.
CheckDone = Callable[[str, CheckResult], None]
# A check that ignores its deadline is abandoned this long after it, so the run still ends.
ABANDON_GRACE_SECONDS = 2.0
# How many targets a bulk check is allowed to start per `timeout` before it is abandoned as broken.
BULK_TARGETS_PER_TIMEOUT = 1000
ERROR_REMEDIATION = (
    "preflight could not complete this check. Rerun it; if it happens again, attach this report to your ticket."
)


# The hosts whose results are held at once: the bulk checks (the port scan) run over this many hosts at a time, and
# a run of 100,000 hosts holds this many hosts' results, not every host's.
HOSTS_PER_BATCH = 4096


def run_plan(
    plans: Iterable[HostPlan],
    timeout: float,
    concurrency: int,
    on_host_done: Callable[[HostReport], None] | None = None,
    on_check_done: CheckDone | None = None,
    resolutions: Mapping[str, Resolution] | None = None,
) -> RunReport:
    """Check every host and gather the results into one report (see PlanRun; for runs small enough to hold whole)."""
    run = PlanRun(plans, timeout, concurrency, on_host_done, on_check_done, resolutions)
    hosts = tuple(run)
    done = run.summary()
    return RunReport(
        done.tool_version, done.started_at, done.finished_at, done.prober_hostname, done.prober_addresses, hosts
    )


class PlanRun:
    """A run of the plan whose host reports arrive one at a time, in the plan's order, as they complete.

    Every host is resolved first, unless `resolutions` already holds its name's addresses (the service resolves
    once, judges the addresses, and pins them, so a DNS answer cannot change between its policy and the probes).
    Kinds of check that work in bulk (tcp) then run once for a batch of up to `hosts_per_batch` hosts; the rest run
    host by host, `concurrency` hosts at a time, each check waiting for the one it needs. The plans are read one
    batch at a time and a host's results are let go once it is handed on, so memory follows the batch, not the run.
    Iterate it once; `summary()` then tells about the whole run.
    """

    def __init__(
        self,
        plans: Iterable[HostPlan],
        timeout: float,
        concurrency: int,
        on_host_done: Callable[[HostReport], None] | None = None,
        on_check_done: CheckDone | None = None,
        resolutions: Mapping[str, Resolution] | None = None,
        hosts_per_batch: int = HOSTS_PER_BATCH,
    ) -> None:
        self._plans = plans
        self._timeout = timeout
        self._concurrency = max(1, concurrency)
        self._on_host_done = on_host_done
        self._on_check_done = on_check_done
        self._pinned = resolutions or {}
        self._hosts_per_batch = max(1, hosts_per_batch)
        self.started_at = _utc_now()
        self._finished_at: str | None = None
        self._hosts = 0
        self._ready = 0
        self._sources: set[str] = set()

    def __iter__(self) -> Iterator[HostReport]:
        with _DaemonPool(self._concurrency) as pool:
            for batch in _batches(self._plans, self._hosts_per_batch):
                for report in self._run_batch(pool, batch):
                    self._count(report)
                    yield report
        self._finished_at = _utc_now()

    def _run_batch(self, pool: _DaemonPool, batch: list[HostPlan]) -> Iterator[HostReport]:
        pinned, timeout = self._pinned, self._timeout

        def resolved_plan(plan: HostPlan) -> _ResolvedPlan:
            return _resolved(plan, timeout, pinned.get(plan.host.name))

        if all(plan.host.name in pinned or _ip_literal(plan.host.address) for plan in batch):
            # Nothing to look up: a thread per host would cost more than the answers.
            resolved = [resolved_plan(plan) for plan in batch]
        else:
            resolved = pool.map(resolved_plan, batch)
        done = _run_in_bulk(resolved, timeout)
        if self._on_check_done is not None:
            for host, results in zip(resolved, done, strict=True):
                for result in results.values():
                    self._on_check_done(host.plan.host.name, result)

        def check_and_report(index: int) -> HostReport:
            report = check_host(resolved[index], timeout, done[index], self._on_check_done)
            # Its results live on only in the report, which is let go once the caller has it.
            done[index] = {}
            if self._on_host_done is not None:
                self._on_host_done(report)
            return report

        if all(
            target.check_id in results for host, results in zip(resolved, done, strict=True) for target in host.targets
        ):
            # Every check ran in bulk (--only tcp): nothing is left to wait for, so a thread per host would only add
            # two hand-offs to each report.
            for index in range(len(resolved)):
                yield check_and_report(index)
            return
        yield from pool.imap(check_and_report, range(len(resolved)))

    def _count(self, report: HostReport) -> None:
        self._hosts += 1
        self._ready += report.ready
        if report.ip:
            source = source_address(report.ip)
            if source:
                self._sources.add(source)

    def summary(self) -> RunSummary:
        """The run around its hosts: when it ran, from where, how many hosts are ready. Once every host is out."""
        if self._finished_at is None:
            raise RuntimeError("the run is not over: iterate it to the end first")
        return RunSummary(
            tool_version=__version__,
            started_at=self.started_at,
            finished_at=self._finished_at,
            prober_hostname=socket.gethostname(),
            prober_addresses=tuple(sorted(self._sources)),
            host_count=self._hosts,
            ready_hosts=self._ready,
        )


def _batches(plans: Iterable[HostPlan], size: int) -> Iterator[list[HostPlan]]:
    batch: list[HostPlan] = []
    for plan in plans:
        batch.append(plan)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_In = TypeVar("_In")
_Out = TypeVar("_Out")
# How often a waiting main thread wakes; Ctrl-C is seen at once, this only bounds a missed wake-up.
_WAIT_SLICE_SECONDS = 0.1


class _DaemonPool:
    """`map` on at most `workers` daemon threads, for the run's hosts.

    Unlike ThreadPoolExecutor, whose threads the interpreter joins at exit, a daemon thread still inside its deadline
    never holds up a Ctrl-C, and the caller waits in short slices so the interrupt is seen at once.
    """

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._stop = threading.Event()

    def __enter__(self) -> _DaemonPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()

    def map(self, work: Callable[[_In], _Out], items: Iterable[_In]) -> list[_Out]:
        """`work` of each item, in order; the first exception a work item raises is raised here."""
        return list(self.imap(work, items))

    def imap(self, work: Callable[[_In], _Out], items: Iterable[_In]) -> Iterator[_Out]:
        """`work` of each item, handed on in order as soon as it and every item before it are done."""
        pending = list(enumerate(items))
        pending.reverse()  # popped from the end, so taken in order
        results: dict[int, _Out] = {}
        failures: list[BaseException] = []
        ready = threading.Condition()

        def serve() -> None:
            while not self._stop.is_set():
                with ready:
                    if not pending:
                        return
                    index, item = pending.pop()
                try:
                    result = work(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
                    with ready:
                        failures.append(exc)
                        ready.notify()
                    return
                with ready:
                    results[index] = result
                    ready.notify()

        count = len(pending)
        for number in range(min(self._workers, count)):
            threading.Thread(target=serve, daemon=True, name=f"host-{number}").start()
        try:
            for index in range(count):
                with ready:
                    while index not in results and not failures:
                        ready.wait(_WAIT_SLICE_SECONDS)
                    if failures:
                        raise failures[0]
                    result = results.pop(index)
                yield result
        except BaseException:
            self._stop.set()
            raise


@dataclass(frozen=True, slots=True)
class _ResolvedPlan:
    plan: HostPlan
    ip: str | None
    targets: tuple[Target, ...]


def _resolved(plan: HostPlan, timeout: float, pinned: Resolution | None = None) -> _ResolvedPlan:
    resolution = pinned if pinned is not None else resolve(plan.host.address, Deadline(timeout))
    targets = tuple(target.resolved(resolution.ip, resolution.addresses, resolution.error) for target in plan.targets)
    return _ResolvedPlan(plan, resolution.ip, targets)


def _ip_literal(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _run_in_bulk(hosts: Sequence[_ResolvedPlan], timeout: float) -> list[dict[str, CheckResult]]:
    """Results of every bulk check (a kind with `run_batch`), per host; bulk kinds need no other check."""
    done: list[dict[str, CheckResult]] = [{} for _ in hosts]
    by_kind: dict[str, tuple[BulkRun, list[tuple[int, Target]]]] = {}
    for index, host in enumerate(hosts):
        for target in host.targets:
            run_batch = registry()[target.kind].run_batch
            if run_batch is None:
                continue
            unmet = _unmet_precondition(target, done[index])
            if unmet is not None:
                done[index][target.check_id] = _result(target, unmet, 0.0)
            else:
                by_kind.setdefault(target.kind, (run_batch, []))[1].append((index, target))
    for kind, (run_batch, members) in by_kind.items():
        secrets = [secret for index in {index for index, _ in members} for secret in hosts[index].plan.host.secrets()]
        results = _run_batch(kind, run_batch, [target for _, target in members], timeout, secrets)
        for (index, target), result in zip(members, results, strict=True):
            done[index][target.check_id] = result
    return done


def _run_batch(
    kind: str,
    run_batch: BulkRun,
    targets: list[Target],
    timeout: float,
    secrets: Sequence[str],
) -> list[CheckResult]:
    findings: list[Finding] = []
    started = time.perf_counter()

    def work() -> None:
        try:
            findings.extend(run_batch(targets, timeout))
        except Exception as exc:  # noqa: BLE001 - a broken bulk check becomes an error on each of its targets
            failure = Finding(Status.ERROR, redact(f"{type(exc).__name__}: {exc}", secrets), {}, ERROR_REMEDIATION)
            findings[:] = [failure] * len(targets)

    thread = threading.Thread(target=work, daemon=True, name=f"bulk-{kind}")
    thread.start()
    # A bulk check settles each target within `timeout` of its first probe; it may take turns to start them.
    thread.join(timeout * (2 + len(targets) / BULK_TARGETS_PER_TIMEOUT) + ABANDON_GRACE_SECONDS)
    elapsed_ms = (time.perf_counter() - started) * 1000
    _log.info("%s: %d checks in one batch, %.0f ms", kind, len(targets), elapsed_ms)
    if thread.is_alive() or len(findings) != len(targets):
        findings = [Finding(Status.ERROR, f"did not finish within {timeout:g}s", {}, ERROR_REMEDIATION)] * len(targets)
    return [_result(target, finding, elapsed_ms) for target, finding in zip(targets, findings, strict=True)]


def check_host(
    plan: _ResolvedPlan, timeout: float, done: Mapping[str, CheckResult], on_check_done: CheckDone | None = None
) -> HostReport:
    """Run the host's remaining checks in waves: a check waits for the check it needs."""
    host = plan.plan.host
    targets = plan.targets
    planned = {target.check_id for target in targets}
    results: dict[str, CheckResult] = dict(done)
    pending = [target for target in targets if target.check_id not in results]
    while pending:
        wave = [
            target
            for target in pending
            if target.needs is None or target.needs not in planned or target.needs in results
        ]
        if not wave:
            break
        for result in _run_wave(wave, results, timeout, host.secrets()):
            results[result.id] = result
            if on_check_done is not None:
                on_check_done(host.name, result)
        pending = [target for target in pending if target.check_id not in results]
    return HostReport(
        name=host.name,
        product=host.product,
        address=host.address,
        ip=plan.ip,
        checks=tuple(results[target.check_id] for target in targets if target.check_id in results),
    )


def _run_wave(
    wave: list[Target], done: Mapping[str, CheckResult], timeout: float, secrets: Sequence[str]
) -> list[CheckResult]:
    slots: list[CheckResult | None] = [None] * len(wave)
    threads = []
    for index, target in enumerate(wave):
        thread = threading.Thread(target=_fill, args=(slots, index, target, done, timeout, secrets), daemon=True)
        thread.start()
        threads.append(thread)
    give_up_at = time.monotonic() + timeout + ABANDON_GRACE_SECONDS
    for thread in threads:
        thread.join(max(0.0, give_up_at - time.monotonic()))
    return [
        slot
        if slot is not None
        else _result(
            target, Finding(Status.ERROR, f"did not finish within {timeout:g}s", {}, ERROR_REMEDIATION), timeout * 1000
        )
        for target, slot in zip(wave, slots, strict=True)
    ]


def _fill(
    slots: list[CheckResult | None],
    index: int,
    target: Target,
    done: Mapping[str, CheckResult],
    timeout: float,
    secrets: Sequence[str],
) -> None:
    slots[index] = run_check(target, done, timeout, secrets)


def run_check(target: Target, done: Mapping[str, CheckResult], timeout: float, secrets: Sequence[str]) -> CheckResult:
    """One check, timed; its prerequisites decide whether it runs, and any exception becomes an error."""
    started = time.perf_counter()
    finding = _unmet_precondition(target, done)
    if finding is None:
        try:
            finding = registry()[target.kind].run(target, Deadline(timeout))
        except Exception as exc:  # noqa: BLE001 - one broken check must not sink the host or the run
            finding = Finding(Status.ERROR, redact(f"{type(exc).__name__}: {exc}", secrets), {}, ERROR_REMEDIATION)
    result = _result(target, finding, (time.perf_counter() - started) * 1000)
    _log.info(
        "%s %s: %s (%s) in %.0f ms", target.host.name, result.id, result.status, result.summary, result.duration_ms
    )
    return result


def _unmet_precondition(target: Target, done: Mapping[str, CheckResult]) -> Finding | None:
    """Why `target` is skipped: the check it needs did not pass, or its host has no address."""
    needed = done.get(target.needs) if target.needs else None
    if needed is not None and needed.status is Status.SKIPPED:
        # Repeat the root cause rather than "x is skipped", so the reader sees what to fix.
        return Finding(Status.SKIPPED, needed.summary, {"needs": needed.id}, needed.remediation)
    # A warning (an expired certificate, say) does not stop what depends on it.
    if needed is not None and needed.status not in (Status.PASS, Status.WARN):
        state = needed.evidence.get("state")
        return Finding(
            Status.SKIPPED,
            f"not attempted: {needed.id} is {state}" if state else f"not attempted: {needed.id}: {needed.summary}",
            {"needs": needed.id},
            # Only the pointer: the fix itself is on the check that failed, and repeating it buries the order.
            f"Fix {needed.id} first.",
        )
    if target.port is not None and target.ip is None:
        return Finding(
            Status.SKIPPED,
            f"not attempted: {target.resolution_error or 'the address does not resolve'}",
            {},
            "Fix public-ip first: give support an address that resolves.",
        )
    return None


def _result(target: Target, finding: Finding, duration_ms: float) -> CheckResult:
    return CheckResult(
        id=target.check_id,
        requirement=target.requirement,
        status=finding.status,
        summary=finding.summary,
        evidence=dict(finding.evidence),
        remediation=finding.remediation,
        duration_ms=round(duration_ms, 3),
        port=target.port,
        purpose=target.purpose,
    )


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
