"""Runs the plan: hosts concurrently, every check under a deadline, no host able to sink the run."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from preflight import __version__
from preflight.deadline import Deadline
from preflight.model import CheckResult, Finding, HostReport, RunReport, Status
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


def run_plan(
    plans: Sequence[HostPlan],
    timeout: float,
    concurrency: int,
    on_host_done: Callable[[HostReport], None] | None = None,
    on_check_done: CheckDone | None = None,
    resolutions: Mapping[str, Resolution] | None = None,
) -> RunReport:
    """Check every host and gather the results into one report.

    Every host is resolved first, unless `resolutions` already holds its name's addresses (the service resolves
    once, judges the addresses, and pins them, so a DNS answer cannot change between its policy and the probes).
    Kinds of check that work in bulk (tcp) then run once for the whole run; the rest run host by host,
    `concurrency` hosts at a time, each check waiting for the one it needs.
    """
    started_at = _utc_now()
    pinned = resolutions or {}
    with _DaemonPool(max(1, concurrency)) as pool:
        resolved = list(pool.map(lambda plan: _resolved(plan, timeout, pinned.get(plan.host.name)), plans))
        done = _run_in_bulk(resolved, timeout)
        if on_check_done is not None:
            for host, results in zip(resolved, done, strict=True):
                for result in results.values():
                    on_check_done(host.plan.host.name, result)

        def check_and_report(index: int) -> HostReport:
            report = check_host(resolved[index], timeout, done[index], on_check_done)
            if on_host_done is not None:
                on_host_done(report)
            return report

        hosts = tuple(pool.map(check_and_report, range(len(resolved))))
    sources = {source_address(host.ip) for host in hosts if host.ip}
    return RunReport(
        tool_version=__version__,
        started_at=started_at,
        finished_at=_utc_now(),
        prober_hostname=socket.gethostname(),
        prober_addresses=tuple(sorted(address for address in sources if address)),
        hosts=hosts,
    )


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
        pending = list(enumerate(items))
        results: dict[int, _Out] = {}
        failures: list[BaseException] = []
        lock = threading.Lock()
        finished = threading.Event()

        def serve() -> None:
            while not self._stop.is_set():
                with lock:
                    if not pending:
                        return
                    index, item = pending.pop(0)
                try:
                    result = work(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
                    failures.append(exc)
                    finished.set()
                    return
                with lock:
                    results[index] = result
                    if not pending and len(results) == count:
                        finished.set()

        count = len(pending)
        if count == 0:
            return []
        for number in range(min(self._workers, count)):
            threading.Thread(target=serve, daemon=True, name=f"host-{number}").start()
        try:
            while not finished.wait(_WAIT_SLICE_SECONDS):
                pass
        except BaseException:
            self._stop.set()
            raise
        if failures:
            self._stop.set()
            raise failures[0]
        return [results[index] for index in range(count)]


@dataclass(frozen=True, slots=True)
class _ResolvedPlan:
    plan: HostPlan
    ip: str | None
    targets: tuple[Target, ...]


def _resolved(plan: HostPlan, timeout: float, pinned: Resolution | None = None) -> _ResolvedPlan:
    resolution = pinned if pinned is not None else resolve(plan.host.address, Deadline(timeout))
    targets = tuple(
        replace(target, ip=resolution.ip, addresses=resolution.addresses, resolution_error=resolution.error)
        for target in plan.targets
    )
    return _ResolvedPlan(plan, resolution.ip, targets)


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
