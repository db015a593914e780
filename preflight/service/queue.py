"""Checks on workers elsewhere: Celery with a Redis broker, one queue per vantage (`preflight.<vantage>`).

The service seals each batch of an inventory with the queue key it shares with its workers, sends it as a task
to every vantage asked for, and collects what comes back through Celery's result backend. A worker never
touches the database. Tasks are acknowledged late, so a worker that dies mid-check leaves its task to another
worker of the same vantage; each task counts its deliveries and gives up, with the reason, past a budget.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun

from preflight import signing
from preflight.render import json as json_report
from preflight.service.intake import sealed_document
from preflight.service.jobs import JobFailed, ProbeSettings, probe_inventory
from preflight.service.sealing import Sealer, SealingError
from preflight.vantages import CombinedReport, EncodedBatch, read_batch

_log = logging.getLogger(__name__)
QUEUE_PREFIX = "preflight."
TASK_NAME = "preflight.check_batch"
VANTAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
DEFAULT_VISIBILITY_TIMEOUT = 300
MAX_DELIVERIES = 3
# Progress is the results finished since the last push, appended to a list the service reads from where it left
# off. Every 2 s: often enough for a page; at every 0.5 s the service's inserts competed with the probing, and one
# worker's check of 1,000 hosts took 1.31x the local run rather than 1.16x (medians of 10, bench/README.md).
PROGRESS_EVERY_SECONDS = 2.0
# And as soon as this many wait: a batch's port scan ends with thousands of results at once (5,000 of 1,000 hosts),
# which the service then stores while the worker runs the batch's other checks, rather than all of them after the
# batch has returned (0.08 s of the check's end, bench/README.md).
PROGRESS_EVERY_RESULTS = 2000
RESULTS_KEPT_SECONDS = 7 * 24 * 3600
COLLECT_EVERY_SECONDS = 0.1
# A worker names each task it has ended here (once Celery has stored its result): the service's collector waits on
# this list rather than only polling, so a batch's result is read as soon as it is there.
FINISHED_KEY = "preflight:finished"


def queue_name(vantage: str) -> str:
    return QUEUE_PREFIX + vantage


def make_app(url: str, visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT) -> Celery:
    """The Celery app of the service and its workers: late acknowledgement, one task at a time per slot."""
    app = Celery("preflight", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=RESULTS_KEPT_SECONDS,
        result_extended=False,
        # A message not acknowledged within this time goes back to its queue: longer than any one batch runs.
        broker_transport_options={
            "visibility_timeout": visibility_timeout,
            # Look for tasks of lost workers every fifth of that time, scanning each time (Kombu's default sweep
            # runs only every 100 s).
            "unacked_restore_interval": max(1, min(10, visibility_timeout // 5)),
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": visibility_timeout},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_default_queue=queue_name("default"),
        broker_heartbeat=10,
    )
    app.task(name=TASK_NAME, bind=True)(_check_batch)
    task_postrun.connect(_announce_finished, weak=False, dispatch_uid="preflight-announce-finished")
    return app


def _announce_finished(sender: Any = None, task_id: str = "", **_: Any) -> None:
    """After a batch's task has run and its result is stored (Celery's task_postrun): wake the service's collector."""
    if getattr(sender, "name", None) != TASK_NAME:
        return
    try:
        client = sender.app.backend.client
        client.rpush(FINISHED_KEY, task_id)
        client.expire(FINISHED_KEY, RESULTS_KEPT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - the collector polls anyway; this only makes it sooner
        _log.debug("task %s: the service was not told it ended (%s)", task_id, type(exc).__name__)


class ProgressPushes:
    """A delivery's results as they finish, and when a push of those not yet in its progress list is due: once
    PROGRESS_EVERY_SECONDS have passed since the last one was due, or as soon as PROGRESS_EVERY_RESULTS more wait."""

    def __init__(self, now: float) -> None:
        self.results: list[list[str]] = []
        self.pushed = 0  # how many of them are in the progress list (counted once a push was stored)
        self._asked = 0  # how many there were when the last push was due
        self._last = now

    def add(self, result: list[str], now: float) -> bool:
        """Take one more result; whether a push is due now."""
        self.results.append(result)
        if now - self._last < PROGRESS_EVERY_SECONDS and len(self.results) - self._asked < PROGRESS_EVERY_RESULTS:
            return False
        self._last, self._asked = now, len(self.results)
        return True

    def fresh(self) -> tuple[int, list[list[str]]]:
        """The results not yet pushed, and the offset of the first of them."""
        return self.pushed, self.results[self.pushed:]


class _Pusher:
    """Appends a delivery's results to its task's progress list from a thread of its own, one push at a time in
    the order of their offsets. A host's thread that finishes a check only records it: it never waits while another
    encodes thousands of results and sends them to the broker (32 of them queued behind each push)."""

    def __init__(self, client: Any, task_id: str, attempt: int) -> None:
        self.pushes = ProgressPushes(time.monotonic())
        self._client = client
        self._task_id = task_id
        self._attempt = attempt
        self._lock = threading.Lock()
        self._due = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=f"progress-{task_id}", daemon=True)
        self._thread.start()

    def add(self, result: list[str]) -> None:
        with self._lock:
            due = self.pushes.add(result, time.monotonic())
        if due:
            self._due.set()

    def end(self, seconds: float = 10.0) -> list[list[str]]:
        """Stop pushing (a push under way is let finish, for at most `seconds`); every result of the delivery."""
        self._ended = True
        self._due.set()
        self._thread.join(seconds)
        return self.pushes.results

    def _run(self) -> None:
        key = progress_key(self._task_id)
        while True:
            self._due.wait()
            self._due.clear()
            if self._ended:
                return
            with self._lock:
                offset, fresh = self.pushes.fresh()
            try:
                self._client.rpush(key, json.dumps({"attempt": self._attempt, "from": offset, "results": fresh}))
                self._client.expire(key, RESULTS_KEPT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - progress is a courtesy; the final result carries the rest
                _log.debug("task %s: progress not stored (%s)", self._task_id, type(exc).__name__)
                continue
            with self._lock:
                self.pushes.pushed = offset + len(fresh)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What a worker needs: how to probe, the queue key to open batches, and which vantage it is."""

    probing: ProbeSettings
    sealer: Sealer
    vantage: str
    egress_address: str = ""
    max_deliveries: int = MAX_DELIVERIES


_worker: WorkerSettings | None = None


def serve_as_worker(settings: WorkerSettings) -> None:
    """Make this process's tasks run with `settings` (set once, before the worker starts consuming)."""
    global _worker
    _worker = settings


def batch_key(task_id: str, attempt: int) -> str:
    """Where a delivery of a task leaves its batch's report (host lines): stored as the text it is, rather than as a
    string inside the task's JSON result, where every quote of it would be escaped and unescaped."""
    return f"preflight:batch:{task_id}:{attempt}"


def progress_key(task_id: str) -> str:
    """The Redis list a task's deliveries append their finished checks to: {"attempt", "from", "results"} each,
    "from" being the offset of its first result among that delivery's results."""
    return f"preflight:progress:{task_id}"


def seal_job(sealer: Sealer, inventory_text: str) -> str:
    return base64.b64encode(sealer.seal(inventory_text.encode())).decode()


def _check_batch(task: Task, job: Mapping[str, Any]) -> dict[str, Any]:
    """Run one batch of hosts from this worker's vantage; what comes back holds no secret."""
    settings = _worker
    if settings is None:
        return {"error": "this worker was not started with `preflight worker`"}
    task_id = str(task.request.id)
    client = task.app.backend.client
    deliveries = int(client.incr(f"preflight:deliveries:{task_id}"))
    client.expire(f"preflight:deliveries:{task_id}", RESULTS_KEPT_SECONDS)
    if deliveries > settings.max_deliveries:
        lost = deliveries - 1
        return {"error": f"vantage {settings.vantage}: gave up after {lost} attempt{'s' if lost > 1 else ''}: "
                "the worker running it was lost each time",
                "attempt": deliveries}
    try:
        text = settings.sealer.open(base64.b64decode(job["sealed"])).decode()
    except (SealingError, ValueError, KeyError):
        return {"error": f"vantage {settings.vantage}: the batch cannot be opened with this worker's queue key",
                "attempt": deliveries}
    pusher = _Pusher(client, task_id, deliveries)

    def check_done(host: str, result: Any) -> None:
        pusher.add([host, result.id, result.status.value, result.summary, result.remediation])

    pinned = {str(name): tuple(addresses) for name, addresses in job["pinned"].items()}
    _log.info("task %s: vantage %s probing %s", task_id, settings.vantage,
              ", ".join(address for addresses in pinned.values() for address in addresses))
    try:
        report = probe_inventory(settings.probing, text, pinned, check_done, [str(k) for k in job.get("only", [])])
    except JobFailed as exc:
        return {"error": f"vantage {settings.vantage}: {exc}", "attempt": deliveries}
    finally:
        results = pusher.end()
    fields = {"schema_version": json_report.SCHEMA_VERSION, **json_report.run_fields(report.summary)}
    fields["prober"]["vantage"] = settings.vantage
    if settings.egress_address:
        fields["prober"]["egress_address"] = settings.egress_address
    # Each host as the line of JSON the report holds: the service stores the text as it comes and writes a
    # one-vantage report from its lines, decoding none of them.
    batch = EncodedBatch(fields, [json.dumps(json_report.host_document(host), ensure_ascii=False)
                                  for host in report.hosts], [host.ready for host in report.hosts])  # fmt: skip
    stored = batch_key(task_id, deliveries)
    client.set(stored, batch.text(), ex=RESULTS_KEPT_SECONDS)
    # Every result again: the service stores those it has not had from the progress list, which a broker that
    # restarted without its data may have lost.
    return {"attempt": deliveries, "batch_key": stored, "results": results}


class Vantages:
    """The vantages that have a live worker now, asked of the workers (Celery's control broadcast) in the
    background, so a page never waits for the broker."""

    def __init__(self, app: Celery, refresh_seconds: float = 5.0) -> None:
        self._app = app
        self.refresh_seconds = refresh_seconds
        self._names: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def live(self) -> tuple[str, ...]:
        with self._lock:
            return self._names

    def refresh(self) -> None:
        """Ask the workers again; when the broker is away, the last answer stands."""
        names = self._ask()
        if names is not None:
            with self._lock:
                self._names = names

    def _ask(self) -> tuple[str, ...] | None:
        try:
            answers = self._app.control.inspect(timeout=1.0).active_queues() or {}
        except Exception as exc:  # noqa: BLE001 - the broker is away: keep the last answer
            _log.debug("cannot ask the workers which vantages they serve: %s", type(exc).__name__)
            return None
        names = {
            queue["name"][len(QUEUE_PREFIX):]
            for queues in answers.values()
            for queue in queues
            if queue["name"].startswith(QUEUE_PREFIX)
        }
        return tuple(sorted(names))


def batches(hosts: Sequence[Any], size: int) -> list[list[Any]]:
    """The hosts cut into batches of at most `size`, in order."""
    return [list(hosts[start:start + size]) for start in range(0, len(hosts), size)]


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The service's side of the queue: its store and keys, the Celery app, how hosts are cut into batches."""

    store: Any  # preflight.service.store.Store
    db_sealer: Sealer
    queue_sealer: Sealer
    signing_key: Any  # Ed25519PrivateKey
    app: Celery
    batch_size: int = 200
    # A task still unknown to the result backend this long after it was sent was lost with the broker: send again.
    resend_after_seconds: float = 600.0
    # Where reports too large to keep in a database row are written (the service's state folder/reports).
    reports_dir: Path = Path("reports")
    report_in_database_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A batch back from a worker in this round of collecting: its task, its report's host lines, and the Redis key
    those were stored at apart (empty for a worker of an earlier release, which sent them in its result)."""

    task_id: str
    text: str
    key: str


class _Report:
    """A check's report file while its batches come back: written and hashed as it grows, signed at the end."""

    def __init__(self, folder: Path, check_id: str, vantages: Sequence[str], count: int, sha256: str | None) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.partial = folder / f".{check_id}.json.tmp"
        self.out = self.partial.open("w", encoding="utf-8")
        self.digest = signing.new_digest()
        self.size = 0
        self.count = count
        self.combined = CombinedReport(self.write, vantages, sha256)

    @property
    def complete(self) -> bool:
        return self.combined.batches >= self.count

    def write(self, text: str) -> None:
        data = text.encode()
        self.digest.update(data)
        self.size += len(data)
        self.out.write(text)


class QueueJobs:
    """Sends claimed checks to the vantages' queues and gathers their results into one signed report.

    The database stays the truth: a check waits there while the broker is away, and is sent when it returns.
    """

    def __init__(self, settings: QueueSettings) -> None:
        self.settings = settings
        self.vantages = Vantages(settings.app)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._broker_down_logged = False
        self._progress_seen: dict[str, tuple[int, int]] = {}  # of workers of an earlier release
        self._progress_read: dict[str, int] = {}  # how many entries of each task's progress list are stored
        # The reports being written, of checks some of whose batches are back (only the collecting thread uses it).
        self._reports: dict[str, _Report] = {}
        # The batches back in this round of collecting, by job: written into their report, and stored in the database
        # at the end of the round unless their check was finished with them (then only marked done).
        self._arrived: dict[int, _Arrival] = {}

    def start(self) -> None:
        keep_large_blocks_apart()
        stranded = self.settings.store.running_without_jobs()
        if stranded:
            self.settings.store.requeue(stranded)
            _log.info("after restart: %d check(s) queued again", len(stranded))
        for target, name in ((self._dispatch, "dispatch"), (self._collect, "collect"), (self._watch, "vantages")):
            threading.Thread(target=target, name=f"queue-{name}", daemon=True).start()

    def submitted(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def live_vantages(self) -> tuple[str, ...]:
        return self.vantages.live()

    # Sending -------------------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            try:
                self._send_pending()
                row = self.settings.store.claim_next()
                if row is not None:
                    # The inventory planned is the one its batches are cut from: parsed once (a second of 10,000 hosts).
                    self._send_pending(self._plan_jobs(row))
                    continue
            except Exception as exc:  # noqa: BLE001 - the broker or database is away: try again shortly
                self._broker_down(exc)
            self._wake.wait(1.0)
            self._wake.clear()

    def _plan_jobs(self, row: Any) -> dict[str, Any]:
        """Record the check's batches as pending jobs; returns what `_send` keeps of the check (see `opened`)."""
        store = self.settings.store
        vantages = [name for name in row.vantages.split(",") if name] or list(self.vantages.live())
        if not vantages:
            store.requeue([row.id])  # no worker yet: the check waits
            return {}
        document = _document_of(self.settings.db_sealer.open(row.sealed_inventory).decode())
        hosts = document.get("hosts")
        count = len(batches(hosts if isinstance(hosts, list) else [], self.settings.batch_size))
        targets = store.targets(row.id)
        store.record_probes([(row.id, address) for _, address in targets])
        store.add_jobs(row.id, [(vantage, batch, f"{row.id}.{vantage}.{batch}")
                                for vantage in vantages for batch in range(count)])
        _log.info("check %s: %d batch(es) to %s", row.id, count, ", ".join(vantages))
        return {row.id: (row, document, targets)}

    def _send_pending(self, opened: dict[str, Any] | None = None) -> None:
        store = self.settings.store
        opened = {} if opened is None else opened
        for job in store.jobs(states=("pending",)):
            self._send(job, opened)
            store.job_sent(job.task_id)
        self._broker_down_logged = False

    def _send(self, job: Any, opened: dict[str, Any] | None = None) -> None:
        """Seal one batch for its vantage's queue; `opened` keeps each check's parsed inventory for its others."""
        opened = {} if opened is None else opened
        if job.check_id not in opened:
            row = self.settings.store.get(job.check_id)
            if row is None or row.sealed_inventory is None:
                self.settings.store.job_ended(job.task_id, error="the check's credentials were erased before it ran")
                return
            text = self.settings.db_sealer.open(row.sealed_inventory).decode()
            opened[job.check_id] = (row, _document_of(text), self.settings.store.targets(job.check_id))
        row, document, targets = opened[job.check_id]
        hosts = batches(document.get("hosts") or [], self.settings.batch_size)[job.batch]
        names = {host.get("name") for host in hosts}
        pinned: dict[str, list[str]] = {}
        for name, address in targets:
            if name in names:
                pinned.setdefault(name, []).append(address)
        batch_text = _batch_text({**document, "hosts": hosts})
        payload = {"sealed": seal_job(self.settings.queue_sealer, batch_text), "pinned": pinned,
                   "only": [kind for kind in row.only_kinds.split(",") if kind]}
        self.settings.app.send_task(TASK_NAME, args=[payload], task_id=job.task_id, queue=queue_name(job.vantage),
                                    retry=False)

    # Gathering ------------------------------------------------------------------------------------------------
    def _collect(self) -> None:
        while not self._stopping.is_set():
            self.collect_once()
            self._until_a_task_ends()

    def collect_once(self) -> None:
        """One round of collecting: what came back is stored, written into its report, and signed when complete."""
        try:
            # A check's waiting answers are woken once per round: when its last batch is back and it is signed, with
            # the verdict (woken by its results first, each would ask again while the report was being written).
            with self.settings.store.changes_held():
                for check_id in self._poll():
                    self._advance(check_id)
        except Exception as exc:  # noqa: BLE001 - the broker or database is away: try again shortly
            self._broker_down(exc)
        finally:
            self._keep_arrivals()

    def _keep_arrivals(self) -> None:
        """Store the batches of this round that no finished check took: a check still waiting on others reads them
        from the database (after a restart too). Until then each is still in Redis, and read again if need be."""
        try:
            for arrival in self._arrived.values():
                self.settings.store.job_ended(arrival.task_id, result_json=arrival.text)
                if arrival.key:
                    self.settings.app.backend.client.delete(arrival.key)
        except Exception as exc:  # noqa: BLE001 - the broker or database is away: the next round reads them again
            self._broker_down(exc)
        finally:
            self._arrived.clear()

    def _until_a_task_ends(self) -> None:
        """Until a worker says a task ended, at most COLLECT_EVERY_SECONDS (progress and lost tasks are polled)."""
        try:
            self.settings.app.backend.client.blpop([FINISHED_KEY], timeout=COLLECT_EVERY_SECONDS)
        except Exception:  # noqa: BLE001 - the broker is away: the loop finds out and says so
            self._stopping.wait(COLLECT_EVERY_SECONDS)

    def _poll(self) -> set[str]:
        store = self.settings.store
        backend = self.settings.app.backend
        touched = set()
        for job in store.jobs(states=("sent",)):
            self._read_progress(job)
            # One read of the task's state: a running task has none (PENDING) until its result is stored. Not kept
            # in Celery's cache: a batch's result is megabytes, and it is read once.
            meta = backend.get_task_meta(job.task_id, cache=False)
            state, value = meta.get("status"), meta.get("result")
            if state == "PROGRESS" and isinstance(value, dict):  # a worker of an earlier release: every result so far
                seen = (int(value.get("attempt", 1)), len(value.get("results", [])))
                if self._progress_seen.get(job.task_id) != seen:
                    self._progress_seen[job.task_id] = seen
                    store.job_results(job, seen[0], value.get("results", []))
            elif state == "SUCCESS":
                if not isinstance(value, dict):
                    value = {"error": "an answer of no known shape"}
                if "error" in value:
                    store.job_ended(job.task_id, error=str(value["error"]))
                else:
                    store.job_results(job, int(value.get("attempt", 1)), value.get("results", []))
                    text = self._batch_of(value)
                    if text is None:
                        store.job_ended(job.task_id, error=f"vantage {job.vantage}: the batch's report is no longer "
                                        "in the queue (it expired or the queue lost its data)")
                        touched.add(job.check_id)
                        continue
                    key = value.get("batch_key")
                    self._arrived[job.id] = _Arrival(job.task_id, text, key if isinstance(key, str) else "")
                touched.add(job.check_id)
            elif state == "FAILURE":
                store.job_ended(job.task_id, error=f"vantage {job.vantage}: the worker failed ({type(value).__name__})")
                touched.add(job.check_id)
            elif state == "PENDING" and job.sent_at is not None:
                sent = job.sent_at.timestamp()
                if time.time() - sent > self.settings.resend_after_seconds:
                    _log.warning("task %s is unknown %.0fs after it was sent: sending it again", job.task_id,
                                 time.time() - sent)
                    self._send(job)
                    store.job_resent(job.task_id)
        return touched

    def _batch_of(self, value: Mapping[str, Any]) -> str | None:
        """A successful task's batch report: stored apart (`batch_key`), or inside the result (a worker of an earlier
        release: its host lines, or before them the whole document)."""
        key = value.get("batch_key")
        if isinstance(key, str) and key.startswith("preflight:batch:"):
            stored = self.settings.app.backend.client.get(key)
            return stored.decode() if stored is not None else None
        text = value.get("batch")
        return text if isinstance(text, str) else EncodedBatch.of(value.get("document") or {}).text()

    def _read_progress(self, job: Any) -> None:
        """Store what the task's deliveries pushed to its progress list since the last read (only those entries
        travel; a delivery's later attempt replaces an earlier one's results, see `Store.job_results`)."""
        client = self.settings.app.backend.client
        read = self._progress_read.get(job.task_id, 0)
        entries = client.lrange(progress_key(job.task_id), read, -1)
        self._progress_read[job.task_id] = read + len(entries)
        for entry in entries:
            try:
                pushed = json.loads(entry)
                self.settings.store.job_results(job, int(pushed["attempt"]), pushed["results"], int(pushed["from"]))
            except (ValueError, KeyError, TypeError) as exc:
                _log.warning("task %s: a progress entry of no known shape (%s)", job.task_id, type(exc).__name__)

    def _advance(self, check_id: str) -> None:
        """Write what came back of a check into its report, batch by batch in order as each batch is back from
        every vantage, so the report is all but written when the last batch returns; then sign and store it."""
        store = self.settings.store
        jobs = store.jobs(check_id=check_id)
        row = store.get(check_id)
        if row is None or row.state != "running" or not jobs:
            self._drop_report(check_id)
            return
        if any(job.state == "failed" for job in jobs):
            if any(job.state in ("pending", "sent") and job.id not in self._arrived for job in jobs):
                return
            self._drop_report(check_id)
            store.fail(check_id, "; ".join(dict.fromkeys(str(job.error) for job in jobs if job.state == "failed")))
            self._forget(check_id, jobs)
            return
        report = self._reports.get(check_id)
        if report is None:
            names = list(dict.fromkeys(job.vantage for job in jobs))
            count = 1 + max(job.batch for job in jobs)
            report = self._reports[check_id] = _Report(self.settings.reports_dir, check_id, names, count,
                                                       row.inventory_sha256)
        done = {(job.vantage, job.batch): job.id for job in jobs if job.state == "done" or job.id in self._arrived}
        while not report.complete:
            batch = report.combined.batches
            if not all((name, batch) in done for name in report.combined.vantages):
                return
            try:
                report.combined.add([(name, read_batch(self._stored_batch(done[(name, batch)])))
                                     for name in report.combined.vantages])  # fmt: skip
            except (ValueError, KeyError, TypeError) as exc:
                self._drop_report(check_id)
                store.fail(check_id, f"batch {batch} came back in a shape this service cannot read ({exc})")
                self._forget(check_id, jobs)
                return
        del self._reports[check_id]
        summary = report.combined.end()
        report.out.close()
        signature = signing.sign_digest(report.digest.digest(), self.settings.signing_key).decode()
        verdict = "ready" if summary["not_ready"] == 0 else "not ready"
        if report.size <= self.settings.report_in_database_bytes:
            store.finish(check_id, verdict, report.partial.read_text(encoding="utf-8"), signature)
            report.partial.unlink()
        else:
            report.partial.rename(self.settings.reports_dir / f"{check_id}.json")
            store.finish(check_id, verdict, None, signature, report_file=f"reports/{check_id}.json")
        _log.info("check %s: done, %s (%d host(s), %d bytes)", check_id, verdict, summary["hosts"], report.size)
        self._forget(check_id, jobs)
        release_memory()

    def _stored_batch(self, job_id: int) -> str:
        """A batch's report: as it arrived in this round of collecting, else from the database (where a check that
        an earlier release was running keeps the whole document)."""
        arrival = self._arrived.get(job_id)
        return arrival.text if arrival is not None else self.settings.store.job_document(job_id)

    def _forget(self, check_id: str, jobs: Sequence[Any]) -> None:
        """A check has ended: its batches of this round are marked done (their report is stored with the check, not
        again with each job), and the queue lets go of its tasks."""
        for job in jobs:
            arrival = self._arrived.pop(job.id, None)
            if arrival is not None:
                self.settings.store.job_ended(arrival.task_id)
                if arrival.key:
                    self.settings.app.backend.client.delete(arrival.key)
        self.settings.store.clear_jobs(check_id)
        for job in jobs:
            self._progress_seen.pop(job.task_id, None)
            self._progress_read.pop(job.task_id, None)
            self.settings.app.AsyncResult(job.task_id).forget()
            self.settings.app.backend.client.delete(progress_key(job.task_id))

    def _drop_report(self, check_id: str) -> None:
        report = self._reports.pop(check_id, None)
        if report is not None:
            report.out.close()
            report.partial.unlink(missing_ok=True)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            self.vantages.refresh()
            self._stopping.wait(self.vantages.refresh_seconds)

    def _broker_down(self, exc: Exception) -> None:
        if not self._broker_down_logged:
            _log.warning("the queue is unavailable (%s); checks wait and are sent when it returns", type(exc).__name__)
            self._broker_down_logged = True
        self._stopping.wait(2.0)


# glibc's mallopt() parameter for the size from which a block gets pages of its own, given back when it is freed.
_M_MMAP_THRESHOLD = -3
_MMAP_FROM_BYTES = 128 * 1024


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def keep_large_blocks_apart() -> None:
    """Have every block of 128 KiB or more (a batch's report is megabytes) mapped on its own and unmapped when freed.
    glibc's default raises that threshold to the largest block freed so far, after which each batch's megabytes
    came from the heap, where what is freed is not given back: the service's peak crept up check after check."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator has its own ways
        _libc().mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM_BYTES)


def release_memory() -> None:
    """Give the memory freed by a finished check back to the system: glibc keeps it in each thread's arena. Between
    checks of 10,000 hosts the service then holds 163-194 MB rather than 179-224 MB (bench/queue.py --soak)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to give back this way
        _libc().malloc_trim(0)


def _document_of(text: str) -> dict[str, Any]:
    document = sealed_document(text)
    return document if isinstance(document, dict) else {}


def _batch_text(document: Mapping[str, Any]) -> str:
    # The sealed text's own form (its `$` are doubled already): JSON, which the worker reads with no YAML parser.
    return json.dumps(dict(document), ensure_ascii=False, separators=(",", ":"))
