"""Runs submitted checks: opens the sealed inventory, builds the plan and runs it exactly as `preflight check`
does, signs the report and stores it. In-process worker threads by default.

`run_requests` is the whole job, so any runner (these threads, or a queue's worker) does the same thing. The
in-process workers take every check waiting at once and run them as one plan, as `preflight check` runs an
inventory of all their hosts (one port scan for all of them), then split the run into one report per check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from preflight import signing
from preflight.model import CheckResult, RunReport
from preflight.options import RunOptions
from preflight.plan import HostPlan, build_plan
from preflight.profiles import Profile
from preflight.redaction import redact
from preflight.render import json as json_report
from preflight.resolution import Resolution, source_address
from preflight.runner import CheckDone, run_plan
from preflight.service import logs
from preflight.service.intake import load_sealed_text
from preflight.service.policy import Refused, TargetPolicy
from preflight.service.sealing import Sealer, SealingError
from preflight.service.store import CheckRow, Store

_log = logging.getLogger(__name__)
# A secret this short may be any word or number of a report; only longer ones are hunted for in the report.
MIN_SECRET_TO_HUNT = 8
# The most hosts one in-process run takes: the port scan of them all is one batch, like a local inventory's.
BATCH_HOSTS = 256
# A burst of submissions is let in before its checks are claimed (a pause this long ends it, or the longest wait),
# so the burst runs as one plan and its accepts do not compete with probing for the interpreter.
QUIET_SECONDS = 0.05
GATHER_SECONDS = 0.5


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


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """One inventory's share of a run: its opened text, the addresses pinned for its hosts, what it asked for."""

    inventory_text: str
    pinned: Mapping[str, Sequence[str]]
    on_check_done: CheckDone | None = None
    only: Sequence[str] = ()


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
    outcome = probe_inventories(settings, [ProbeRequest(inventory_text, pinned, on_check_done, only)])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def probe_inventories(settings: ProbeSettings, requests: Sequence[ProbeRequest]) -> list[RunReport | Exception]:
    """Check the hosts of several inventories in one run of `preflight check`'s plan and runner, and split the run
    into one report per inventory, the report its own run would have made (same hosts, names, checks and digest).

    An inventory that cannot run gets its exception instead (JobFailed when the policy refuses an address); the
    others run without it.
    """
    outcomes: list[RunReport | Exception] = [JobFailed("not run")] * len(requests)
    options = RunOptions(tcp_method=settings.tcp_method, known_hosts=settings.known_hosts)
    plans: list[HostPlan] = []
    resolutions: dict[str, Resolution] = {}
    # Two inventories may name their hosts alike: in the run each host has a name of its own, mapped back after.
    owners: dict[str, tuple[int, str]] = {}
    inventories = {}
    for index, request in enumerate(requests):
        try:
            inventory = load_sealed_text(request.inventory_text, settings.profiles)
            for name, addresses in request.pinned.items():
                for address in addresses:
                    try:
                        settings.policy.judge(address, name)
                    except Refused as exc:
                        raise JobFailed(f"refused by the target policy: {exc}") from None
            own_plans = build_plan(inventory, settings.profiles, request.only, options)
        except Exception as exc:  # noqa: BLE001 - handed to the caller as this inventory's outcome
            outcomes[index] = exc
            continue
        inventories[index] = inventory
        for plan in own_plans:
            if len(requests) == 1:
                # The run is this inventory's alone: its plans go as they are (a copy of each host and target costs
                # a tenth of a batch of 1,000 hosts).
                name = plan.host.name
                plans.append(plan)
            else:
                name = f"{index}:{plan.host.name}"
                host = plan.host.model_copy(update={"name": name})
                plans.append(HostPlan(host, tuple(replace(target, host=host) for target in plan.targets)))
            owners[name] = (index, plan.host.name)
            if plan.host.name in request.pinned:
                resolutions[name] = Resolution(tuple(request.pinned[plan.host.name]))
    if not inventories:
        return outcomes

    def check_done(name: str, result: CheckResult) -> None:
        index, own_name = owners[name]
        callback = requests[index].on_check_done
        if callback is not None:
            callback(own_name, result)

    secrets = {index: [secret for host in inventory.hosts for secret in host.secrets()]
               for index, inventory in inventories.items()}  # fmt: skip
    with logs.masking([secret for held in secrets.values() for secret in held]):
        try:
            run = run_plan(plans, timeout=settings.timeout, concurrency=settings.concurrency, on_check_done=check_done,
                           resolutions=resolutions)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the run's failure is each of its inventories' outcome
            for index in inventories:
                outcomes[index] = exc
            return outcomes
        for index, inventory in inventories.items():
            if len(requests) == 1:
                hosts = run.hosts
            else:
                hosts = tuple(replace(host, name=owners[host.name][1])
                              for host in run.hosts if owners[host.name][0] == index)  # fmt: skip
            if len(inventories) == 1:
                # The run is this inventory's alone: its own sources are these hosts' (a route lookup each, 0.3 s
                # for a batch of 1,000, not asked twice).
                addresses = run.prober_addresses
            else:
                sources = {source_address(host.ip) for host in hosts if host.ip}
                addresses = tuple(sorted(a for a in sources if a))
            report = replace(run, hosts=hosts, prober_addresses=addresses, inventory_sha256=inventory.sha256)
            # Each report is hunted for its own inventory's passwords: another's could be any word of it. A report
            # with none to hunt is not rendered for it (a batch of 1,000 hosts is 5 MB of text, half a second).
            hunted = [secret for secret in secrets[index] if len(secret) >= MIN_SECRET_TO_HUNT]
            text = json_report.render(report) if hunted else ""
            if any(secret in text for secret in hunted):
                outcomes[index] = JobFailed("the report would have held a password, so it was not kept")
            else:
                outcomes[index] = report
    return outcomes


@dataclass
class _Opened:
    row: CheckRow
    secrets: Sequence[str] = ()
    request: ProbeRequest | None = None
    failure: Exception | None = None


def run_requests(settings: JobSettings, rows: Sequence[CheckRow]) -> None:
    """Check the hosts of stored requests in one run, then store each one's signed report or why it failed."""
    store = settings.store
    progress = _Progress(store)
    targets = store.targets_of([row.id for row in rows])
    opened = [_open(settings, row, _pinned(targets[row.id]), progress) for row in rows]
    runnable = [(item, item.request) for item in opened if item.request is not None]
    if len(runnable) > 1:
        _log.info("checks %s: %d hosts, run as one plan", ", ".join(item.row.id for item, _ in runnable),
                  sum(len(request.pinned) for _, request in runnable))  # fmt: skip
    outcomes: list[RunReport | Exception]
    try:
        store.record_probes([(item.row.id, address) for item, request in runnable
                             for addresses in request.pinned.values() for address in addresses])  # fmt: skip
        for item, request in runnable:
            _log.info("check %s: probing %s", item.row.id,
                      ", ".join(address for addresses in request.pinned.values() for address in addresses))  # fmt: skip
        outcomes = probe_inventories(settings.probing, [request for _, request in runnable])
        progress.flush()
    except Exception as exc:  # noqa: BLE001 - a broken run fails each of its checks with the reason
        outcomes = [exc] * len(runnable)
    for (item, _), outcome in zip(runnable, outcomes, strict=True):
        if isinstance(outcome, Exception):
            item.failure = outcome
            continue
        try:
            _finish(settings, item.row, outcome)
        except Exception as exc:  # noqa: BLE001 - as any failure of the job
            item.failure = exc
    for item in opened:
        if item.failure is not None:
            _fail(store, item.row, item.failure, item.secrets)


def _open(settings: JobSettings, row: CheckRow, pinned: dict[str, tuple[str, ...]], progress: _Progress) -> _Opened:
    """A stored request's sealed inventory opened, with its passwords (to keep them out of errors)."""
    opened = _Opened(row)
    try:
        if row.sealed_inventory is None:
            raise JobFailed("the credentials of this check were already erased")
        try:
            text = settings.sealer.open(row.sealed_inventory).decode()
        except SealingError as exc:
            raise JobFailed(str(exc)) from None
        hosts = load_sealed_text(text, settings.probing.profiles).hosts
        opened.secrets = [secret for host in hosts for secret in host.secrets()]
        only = [kind for kind in row.only_kinds.split(",") if kind]
        opened.request = ProbeRequest(text, pinned, progress.reporter(row.id), only)
    except Exception as exc:  # noqa: BLE001 - failed with its reason once the run is over
        opened.failure = exc
    return opened


def _finish(settings: JobSettings, row: CheckRow, report: RunReport) -> None:
    text_report = json_report.render(report)
    signature = signing.sign(text_report.encode(), settings.signing_key)
    settings.store.finish(row.id, "ready" if report.ready else "not ready", text_report, signature.decode())
    _log.info("check %s: done, %s", row.id, "ready" if report.ready else "not ready")


def _fail(store: Store, row: CheckRow, failure: Exception, secrets: Sequence[str]) -> None:
    if isinstance(failure, JobFailed):
        _log.warning("check %s: failed: %s", row.id, failure)
        store.fail(row.id, str(failure))
        return
    reason = redact(f"{type(failure).__name__}: {failure}", secrets)
    _log.error("check %s: failed: %s", row.id, reason, exc_info=failure)
    store.fail(row.id, f"preflight could not complete this check ({reason})")


class _Progress:
    """Results stored as they finish, in group commits: a result that finds no write under way writes every
    result waiting, so a burst of them (a port scan's) is one commit, not one each."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiting: list[tuple[str, str, str, str, str, str]] = []
        self._lock = threading.Lock()
        self._writing = threading.Lock()

    def reporter(self, check_id: str) -> CheckDone:
        def check_done(host: str, result: CheckResult) -> None:
            with self._lock:
                self._waiting.append(
                    (check_id, host, result.id, result.status.value, result.summary, result.remediation)
                )
            # Another thread writing will take this one too, or the next result (or the run's end) will.
            if self._writing.acquire(blocking=False):
                try:
                    self._write_waiting()
                finally:
                    self._writing.release()

        return check_done

    def flush(self) -> None:
        """Every result reported so far is stored."""
        with self._writing:
            self._write_waiting()

    def _write_waiting(self) -> None:
        while True:
            with self._lock:
                batch, self._waiting = self._waiting, []
            if not batch:
                return
            self._store.add_results(batch)


class JobFailed(Exception):
    """A check that cannot run, with the reason its page shows."""


def _pinned(targets: Sequence[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    pinned: dict[str, tuple[str, ...]] = {}
    for host, address in targets:
        pinned[host] = (*pinned.get(host, ()), address)
    return pinned


class InProcessJobs:
    """Worker threads in the service's own process: each takes the checks waiting (up to `batch_hosts` hosts, oldest
    first) and runs them as one plan."""

    def __init__(self, settings: JobSettings, workers: int, batch_hosts: int = BATCH_HOSTS) -> None:
        self.settings = settings
        self._workers = workers
        self._batch_hosts = batch_hosts
        self._last_submitted = 0.0
        self._wake = threading.Event()
        self._claiming = threading.Lock()
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
        self._last_submitted = time.monotonic()
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _work(self) -> None:
        while not self._stopping.is_set():
            # One worker at a time waits out a burst and claims; the others sleep on the lock, not on the interpreter.
            with self._claiming:
                self._let_burst_in()
                try:
                    rows = self.settings.store.claim_queued(self._batch_hosts)
                except Exception:  # noqa: BLE001 - the database is away for a moment: look again shortly
                    _log.exception("claiming queued checks failed")
                    rows = []
            if not rows:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            run_requests(self.settings, rows)

    def _let_burst_in(self) -> None:
        """Wait while submissions keep arriving (until a pause of QUIET_SECONDS, at most GATHER_SECONDS)."""
        give_up = time.monotonic() + GATHER_SECONDS
        while not self._stopping.is_set():
            now = time.monotonic()
            quiet_for = now - self._last_submitted
            if quiet_for >= QUIET_SECONDS or now >= give_up:
                return
            time.sleep(min(QUIET_SECONDS - quiet_for, give_up - now))
