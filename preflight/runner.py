"""Runs the plan: hosts concurrently, every check under a deadline, no host able to sink the run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from preflight import __version__
from preflight.deadline import Deadline
from preflight.model import CheckResult, Finding, HostReport, RunReport, Status
from preflight.plan import HostPlan
from preflight.probes import registry
from preflight.resolution import resolve, source_address
from preflight.target import Target

# A check that ignores its deadline is abandoned this long after it, so the run still ends.
ABANDON_GRACE_SECONDS = 2.0
ERROR_REMEDIATION = (
    "preflight could not complete this check. Rerun it; if it happens again, attach this report to your ticket."
)


def run_plan(
    plans: Sequence[HostPlan],
    timeout: float,
    concurrency: int,
    on_host_done: Callable[[HostReport], None] | None = None,
) -> RunReport:
    """Check every host and gather the results into one report."""
    started_at = _utc_now()

    def check_and_report(plan: HostPlan) -> HostReport:
        report = check_host(plan, timeout)
        if on_host_done is not None:
            on_host_done(report)
        return report

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="host") as pool:
        hosts = tuple(pool.map(check_and_report, plans))
    sources = {source_address(host.ip) for host in hosts if host.ip}
    return RunReport(
        tool_version=__version__,
        started_at=started_at,
        finished_at=_utc_now(),
        prober_hostname=socket.gethostname(),
        prober_addresses=tuple(sorted(address for address in sources if address)),
        hosts=hosts,
    )


def check_host(plan: HostPlan, timeout: float) -> HostReport:
    """Resolve the host once, then run its checks in waves: a check waits for the check it needs."""
    host = plan.host
    resolution = resolve(host.address, Deadline(timeout))
    targets = [
        replace(target, ip=resolution.ip, addresses=resolution.addresses, resolution_error=resolution.error)
        for target in plan.targets
    ]
    planned = {target.check_id for target in targets}
    results: dict[str, CheckResult] = {}
    pending = targets
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
        pending = [target for target in pending if target.check_id not in results]
    return HostReport(
        name=host.name,
        product=host.product,
        address=host.address,
        ip=resolution.ip,
        checks=tuple(results[target.check_id] for target in targets if target.check_id in results),
    )


def _run_wave(
    wave: list[Target], done: dict[str, CheckResult], timeout: float, secrets: Sequence[str]
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
    done: dict[str, CheckResult],
    timeout: float,
    secrets: Sequence[str],
) -> None:
    slots[index] = run_check(target, done, timeout, secrets)


def run_check(target: Target, done: dict[str, CheckResult], timeout: float, secrets: Sequence[str]) -> CheckResult:
    """One check, timed; its prerequisites decide whether it runs, and any exception becomes an error."""
    started = time.perf_counter()
    needed = done.get(target.needs) if target.needs else None
    if needed is not None and needed.status is not Status.PASS:
        finding = Finding(
            Status.SKIPPED,
            f"not attempted: {needed.id} is {needed.evidence.get('state', needed.status.value)}",
            {"needs": needed.id},
            f"Fix {needed.id} first: {needed.remediation}",
        )
    elif target.port is not None and target.ip is None:
        finding = Finding(
            Status.SKIPPED,
            f"not attempted: {target.resolution_error or 'the address does not resolve'}",
            {},
            "Fix public-ip first: give support an address that resolves.",
        )
    else:
        try:
            finding = registry()[target.kind].run(target, Deadline(timeout))
        except Exception as exc:  # noqa: BLE001 - one broken check must not sink the host or the run
            finding = Finding(Status.ERROR, redact(f"{type(exc).__name__}: {exc}", secrets), {}, ERROR_REMEDIATION)
    return _result(target, finding, (time.perf_counter() - started) * 1000)


def _result(target: Target, finding: Finding, duration_ms: float) -> CheckResult:
    return CheckResult(
        id=target.check_id,
        requirement=target.requirement,
        status=finding.status,
        summary=finding.summary,
        evidence=dict(finding.evidence),
        remediation=finding.remediation,
        duration_ms=round(duration_ms, 3),
    )


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced, for messages that quote what a library said."""
    for secret in secrets:
        text = text.replace(secret, "********")
    return text


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
