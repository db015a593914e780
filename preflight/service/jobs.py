"""Runs submitted checks: opens the sealed inventory, builds the plan and runs it exactly as `preflight check`
does, signs the report and stores it. In-process worker threads by default.

`run_request` is the whole job, so any runner (these threads, or a queue's worker) does the same thing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from preflight import signing
from preflight.model import CheckResult, RunReport
from preflight.options import RunOptions
from preflight.plan import build_plan
from preflight.profiles import Profile
from preflight.redaction import redact
from preflight.render import json as json_report
from preflight.resolution import Resolution
from preflight.runner import CheckDone, run_plan
from preflight.service import logs
from preflight.service.intake import load_sealed_text
from preflight.service.policy import Refused, TargetPolicy
from preflight.service.sealing import Sealer, SealingError
from preflight.service.store import CheckRow, Store

_log = logging.getLogger(__name__)
# A secret this short may be any word or number of a report; only longer ones are hunted for in the report.
MIN_SECRET_TO_HUNT = 8


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """How a job probes: the same knobs `preflight check` has, and the policy that judges every address again."""

    profiles: Mapping[str, Profile]
    policy: TargetPolicy
    known_hosts: Path
    timeout: float = 10.0
    concurrency: int = 32
    tcp_method: str = "auto"


@dataclass(frozen=True, slots=True)
class JobSettings:
    """What an in-process job needs besides the request: how to probe, and the service's store and keys."""

    probing: ProbeSettings
    store: Store
    sealer: Sealer
    signing_key: Ed25519PrivateKey
    max_attempts: int = 2


def probe_inventory(
    settings: ProbeSettings,
    inventory_text: str,
    pinned: Mapping[str, Sequence[str]],
    on_check_done: CheckDone | None = None,
    only: Sequence[str] = (),
) -> RunReport:
    """Check the hosts of an opened inventory at their pinned addresses: `preflight check`'s plan and runner.

    Raises JobFailed when an address is refused by this runner's own policy (a second look, after the service's).
    """
    inventory = load_sealed_text(inventory_text, settings.profiles)
    secrets = [secret for host in inventory.hosts for secret in host.secrets()]
    with logs.masking(secrets):
        for name, addresses in pinned.items():
            for address in addresses:
                try:
                    settings.policy.judge(address, name)
                except Refused as exc:
                    raise JobFailed(f"refused by the target policy: {exc}") from None
        options = RunOptions(tcp_method=settings.tcp_method, known_hosts=settings.known_hosts)
        plans = build_plan(inventory, settings.profiles, only, options)
        report = run_plan(
            plans,
            timeout=settings.timeout,
            concurrency=settings.concurrency,
            on_check_done=on_check_done,
            resolutions={name: Resolution(tuple(addresses)) for name, addresses in pinned.items()},
        )
        report = replace(report, inventory_sha256=inventory.sha256)
        text = json_report.render(report)
        if any(secret in text for secret in secrets if len(secret) >= MIN_SECRET_TO_HUNT):
            raise JobFailed("the report would have held a password, so it was not kept")
    return report


def run_request(settings: JobSettings, row: CheckRow) -> None:
    """Check the hosts of one stored request, then store the signed report or the reason it failed."""
    store = settings.store
    secrets: Sequence[str] = ()
    try:
        if row.sealed_inventory is None:
            raise JobFailed("the credentials of this check were already erased")
        try:
            text = settings.sealer.open(row.sealed_inventory).decode()
        except SealingError as exc:
            raise JobFailed(str(exc)) from None
        hosts = load_sealed_text(text, settings.probing.profiles).hosts
        secrets = [secret for host in hosts for secret in host.secrets()]
        pinned = _pinned(store.targets(row.id))
        for addresses in pinned.values():
            for address in addresses:
                store.record_probe(row.id, address)
        _log.info("check %s: probing %s", row.id, ", ".join(a for addresses in pinned.values() for a in addresses))

        def result_done(host: str, result: CheckResult) -> None:
            store.add_result(row.id, host, result.id, result.status.value, result.summary, result.remediation)

        only = [kind for kind in row.only_kinds.split(",") if kind]
        report = probe_inventory(settings.probing, text, pinned, result_done, only)
        text_report = json_report.render(report)
        signature = signing.sign(text_report.encode(), settings.signing_key)
        store.finish(row.id, "ready" if report.ready else "not ready", text_report, signature.decode())
        _log.info("check %s: done, %s", row.id, "ready" if report.ready else "not ready")
    except JobFailed as exc:
        _log.warning("check %s: failed: %s", row.id, exc)
        store.fail(row.id, str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken job is a failed check with its reason, never a dead worker
        reason = redact(f"{type(exc).__name__}: {exc}", secrets)
        _log.exception("check %s: failed: %s", row.id, reason)
        store.fail(row.id, f"preflight could not complete this check ({reason})")


class JobFailed(Exception):
    """A check that cannot run, with the reason its page shows."""


def _pinned(targets: Sequence[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    pinned: dict[str, tuple[str, ...]] = {}
    for host, address in targets:
        pinned[host] = (*pinned.get(host, ()), address)
    return pinned


class InProcessJobs:
    """Worker threads in the service's own process: each takes the oldest queued check and runs it."""

    def __init__(self, settings: JobSettings, workers: int) -> None:
        self.settings = settings
        self._workers = workers
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Requeue what a previous run left running, then start the workers."""
        requeued, failed = self.settings.store.requeue_unfinished(self.settings.max_attempts)
        if requeued or failed:
            _log.info("after restart: %d check(s) queued again, %d failed after %d attempts",
                      requeued, failed, self.settings.max_attempts)
        for number in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"check-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def live_vantages(self) -> tuple[str, ...]:
        return ()

    def submitted(self) -> None:
        """A check was queued: wake a worker now rather than at its next look."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _work(self) -> None:
        while not self._stopping.is_set():
            row = self.settings.store.claim_next()
            if row is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            run_request(self.settings, row)
