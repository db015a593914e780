"""A service upgraded before its workers: a batch that a worker of an earlier release sends (the whole document, or
its host lines inside the result) is written into the signed report as the current release's batch is (its host
lines stored apart). And the results a batch pushes as it runs. A real Redis holds the task results; nothing is
probed (the batches' results are stored as a worker would store them)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from preflight import signing
from preflight.service import schema
from preflight.service.intake import sealed_text
from preflight.service.queue import (
    PROGRESS_EVERY_RESULTS,
    PROGRESS_EVERY_SECONDS,
    ProgressPushes,
    QueueJobs,
    QueueSettings,
    _Pusher,
    batch_key,
    make_app,
    progress_key,
)
from preflight.service.sealing import Sealer, load_or_create_master_key
from preflight.service.store import NewCheck, Store, make_engine
from preflight.vantages import EncodedBatch
from tests.queue_lab import redis_server


def _document(host: str) -> dict[str, Any]:
    return {
        "schema_version": "1",
        "tool": {"name": "preflight", "version": "0"},
        "started_at": "2026-11-27T10:00:00Z",
        "finished_at": "2026-11-27T10:00:01Z",
        "prober": {"hostname": "worker", "addresses": ["127.0.0.1"], "vantage": "eu"},
        "summary": {"hosts": 1, "ready": 0, "not_ready": 1},
        "warnings": [],
        "hosts": [{"name": host, "product": "pbxware", "address": "127.0.0.2", "ip": "127.0.0.2", "ready": False,
                   "checks": [{"id": "tcp/2020", "status": "fail", "summary": "filtered"}]}],
    }


@contextlib.contextmanager
def _sent_check(
    tmp_path: Path, hosts: int = 1, batch_size: int = 200
) -> Iterator[tuple[Store, QueueJobs, Any, str, Any]]:
    """A check of `hosts` hosts claimed and its one batch sent, as far as the service is concerned (no worker runs:
    each test stores what a worker would), with a real Redis as broker and result backend."""
    with redis_server(tmp_path / "redis") as redis:
        store = Store(make_engine(f"sqlite:///{tmp_path / 'service.db'}"))
        schema.upgrade(store.engine)
        sealer = Sealer(load_or_create_master_key(tmp_path / "service.key"))
        key = Ed25519PrivateKey.generate()
        app = make_app(redis.url())
        jobs = QueueJobs(QueueSettings(store=store, db_sealer=sealer, queue_sealer=sealer, signing_key=key, app=app,
                                       reports_dir=tmp_path / "reports", batch_size=batch_size))  # fmt: skip
        names = [f"h{index}" for index in range(hosts)]
        inventory = {"hosts": [{"name": name, "product": "pbxware", "address": "127.0.0.2"} for name in names]}
        check_id = store.create_check(NewCheck(
            ticket="T-upgrade", contact="", source="api", submitted_by="test", client_address="127.0.0.1",
            product="pbxware", targets=[(name, "127.0.0.2") for name in names], total=hosts,
            sealed_inventory=sealer.seal(sealed_text(inventory).encode()), vantages=["eu"], egress_address="",
        ))  # fmt: skip
        row = store.claim_next()
        assert row is not None and row.id == check_id
        jobs._plan_jobs(row)
        for job in store.jobs(check_id=check_id):
            store.job_sent(job.task_id)
        yield store, jobs, app, check_id, key


def _collect(jobs: QueueJobs) -> None:
    jobs.collect_once()


@pytest.mark.parametrize("release", ["earliest", "earlier", "current"])
def test_a_batch_of_a_worker_of_each_release_is_written_into_the_signed_report(tmp_path: Path, release: str) -> None:
    with _sent_check(tmp_path) as (store, jobs, app, check_id, key):
        [job] = store.jobs(check_id=check_id)
        document = _document("h0")
        results = [["h0", "tcp/2020", "fail", "filtered", ""]]
        text = EncodedBatch.of(document).text()
        if release == "earliest":  # the whole document inside the result
            batch: dict[str, Any] = {"attempt": 1, "document": document, "results": results}
        elif release == "earlier":  # its host lines inside the result
            batch = {"attempt": 1, "batch": text, "results": results}
        else:  # its host lines stored apart, the result naming them
            app.backend.client.set(batch_key(job.task_id, 1), text)
            batch = {"attempt": 1, "batch_key": batch_key(job.task_id, 1), "results": results}
        app.backend.store_result(job.task_id, batch, "SUCCESS")
        _collect(jobs)
        done = store.get(check_id)
        left = app.backend.client.keys("preflight:batch:*")
        [ended] = store.jobs(check_id=check_id)
        kept = store.job_document(ended.id)
    assert done is not None and done.state == "done", done and done.error
    assert done.report_json is not None and done.report_sig is not None
    report = json.loads(done.report_json)
    assert report["hosts"] == document["hosts"]
    assert report["prober"]["vantage"] == "eu"
    assert done.done == 1
    signing.verify(done.report_json.encode(), done.report_sig.encode(), key.public_key())
    assert left == [], "the batch stored apart is deleted once it is in the database"
    # The check ended with this batch: its report is stored with the check, not a second time with the job.
    assert ended.state == "done" and kept == "{}"


def test_a_batch_the_queue_no_longer_holds_fails_the_check_with_the_reason(tmp_path: Path) -> None:
    with _sent_check(tmp_path) as (store, jobs, app, check_id, _):
        [job] = store.jobs(check_id=check_id)
        # Named by the result, but not stored (expired, or the queue lost its data).
        results = [["h0", "tcp/2020", "fail", "filtered", ""]]
        app.backend.store_result(job.task_id, {"attempt": 1, "batch_key": batch_key(job.task_id, 1),
                                               "results": results}, "SUCCESS")  # fmt: skip
        _collect(jobs)
        failed = store.get(check_id)
    assert failed is not None and failed.state == "failed"
    assert failed.error == "vantage eu: the batch's report is no longer in the queue (it expired or the queue lost " \
                           "its data)"


def test_progress_is_read_from_where_it_was_left_and_a_later_delivery_replaces_an_earlier(tmp_path: Path) -> None:
    hosts = 4
    results = [[f"h{index}", "tcp/2020", "fail", "filtered", ""] for index in range(hosts)]
    with _sent_check(tmp_path, hosts) as (store, jobs, app, check_id, _):
        [job] = store.jobs(check_id=check_id)
        client, key = app.backend.client, progress_key(job.task_id)

        def push(attempt: int, start: int, end: int) -> None:
            client.rpush(key, json.dumps({"attempt": attempt, "from": start, "results": results[start:end]}))

        def stored() -> list[tuple[str, int | None]]:
            return [(row.host, row.attempt) for row in store.results(check_id)]

        push(1, 0, 2)
        _collect(jobs)
        assert stored() == [("h0", 1), ("h1", 1)]
        push(1, 1, 3)  # overlapping what was stored: only h2 is new
        _collect(jobs)
        assert stored() == [("h0", 1), ("h1", 1), ("h2", 1)]
        push(1, 5, 6)  # a gap (results 3 and 4 never came): nothing of it is stored
        _collect(jobs)
        assert len(stored()) == 3
        # The worker died; the task's second delivery starts over, and its results replace the first's.
        push(2, 0, 1)
        _collect(jobs)
        assert stored() == [("h0", 2)]
        push(1, 3, 4)  # the first delivery, late: ignored
        _collect(jobs)
        assert stored() == [("h0", 2)]
        assert store.get(check_id).done == 1  # type: ignore[union-attr]
        # The final result holds every result again: those not stored yet are added, none twice.
        text = EncodedBatch.of({**_document("h0"), "hosts": [
            {**_document("h0")["hosts"][0], "name": f"h{index}"} for index in range(hosts)]}).text()
        client.set(batch_key(job.task_id, 2), text)
        app.backend.store_result(job.task_id, {"attempt": 2, "batch_key": batch_key(job.task_id, 2),
                                               "results": results}, "SUCCESS")  # fmt: skip
        _collect(jobs)
        done = store.get(check_id)
        final = stored()
        left = client.keys("preflight:progress:*")
    assert done is not None and done.state == "done", done and done.error
    assert final == [(f"h{index}", 2) for index in range(hosts)]
    assert done.done == hosts
    assert left == [], "the progress list is deleted with the check's jobs"


def test_the_progress_snapshots_of_a_worker_of_an_earlier_release_are_stored_once(tmp_path: Path) -> None:
    results = [[f"h{index}", "tcp/2020", "fail", "filtered", ""] for index in range(3)]
    with _sent_check(tmp_path, 3) as (store, jobs, app, check_id, _):
        [job] = store.jobs(check_id=check_id)
        counts = []
        for shown in (2, 2, 3):  # every result so far, each time (the same snapshot twice)
            app.backend.store_result(job.task_id, {"attempt": 1, "results": results[:shown]}, "PROGRESS")
            _collect(jobs)
            counts.append((len(store.results(check_id)), store.get(check_id).done))  # type: ignore[union-attr]
    assert counts == [(2, 2), (2, 2), (3, 3)]


def test_a_batch_back_before_the_one_ahead_of_it_waits_in_the_database(tmp_path: Path) -> None:
    with _sent_check(tmp_path, hosts=2, batch_size=1) as (store, jobs, app, check_id, key):
        first, second = store.jobs(check_id=check_id)
        client = app.backend.client

        def back(job: Any, name: str) -> None:
            client.set(batch_key(job.task_id, 1), EncodedBatch.of(_document(name)).text())
            app.backend.store_result(job.task_id, {"attempt": 1, "batch_key": batch_key(job.task_id, 1),
                                                   "results": [[name, "tcp/2020", "fail", "filtered", ""]]}, "SUCCESS")

        back(second, "h1")
        _collect(jobs)
        waiting = store.get(check_id)
        kept = store.job_document(second.id)
        assert waiting is not None and waiting.state == "running"
        assert json.loads(kept.splitlines()[1])["name"] == "h1", "the second batch waits in the database"
        assert client.keys("preflight:batch:*") == [], "the waiting batch's copy in Redis is deleted"
        back(first, "h0")
        _collect(jobs)
        done = store.get(check_id)
        kept_after = [store.job_document(job.id) for job in store.jobs(check_id=check_id)]
        left = client.keys("preflight:batch:*")
    assert done is not None and done.state == "done", done and done.error
    assert done.report_json is not None
    assert [host["name"] for host in json.loads(done.report_json)["hosts"]] == ["h0", "h1"]
    signing.verify(done.report_json.encode(), (done.report_sig or "").encode(), key.public_key())
    assert kept_after == ["{}", "{}"] and left == []


def test_a_delivery_pushes_its_results_when_2_s_have_passed_or_as_soon_as_2000_more_wait() -> None:
    """Pure logic: when a worker appends to its task's progress list, and what (the clock is given)."""
    start = 1000.0
    pushes = ProgressPushes(start)
    result = ["h", "tcp/80", "pass", "open", ""]
    # A port scan's results arrive at once: no push is due until PROGRESS_EVERY_RESULTS wait.
    assert not any(pushes.add(result, start + 0.5) for _ in range(PROGRESS_EVERY_RESULTS - 1))
    assert pushes.add(result, start + 0.5)
    assert pushes.fresh() == (0, [result] * PROGRESS_EVERY_RESULTS)
    # While that push is on its way, more results do not ask for another until as many more wait.
    assert not pushes.add(result, start + 0.6)
    pushes.pushed = PROGRESS_EVERY_RESULTS
    # Then a few at a time: due once PROGRESS_EVERY_SECONDS have passed since the last was due.
    assert not pushes.add(result, start + 0.5 + PROGRESS_EVERY_SECONDS - 0.01)
    assert pushes.add(result, start + 0.5 + PROGRESS_EVERY_SECONDS)
    assert pushes.fresh() == (PROGRESS_EVERY_RESULTS, [result] * 3)
    # A push the broker did not take is not counted (`pushed` stays): the next carries its results again.
    assert not pushes.add(result, start + 0.6 + PROGRESS_EVERY_SECONDS)
    assert pushes.add(result, start + 0.5 + 2 * PROGRESS_EVERY_SECONDS)
    assert pushes.fresh() == (PROGRESS_EVERY_RESULTS, [result] * 5)
    assert len(pushes.results) == PROGRESS_EVERY_RESULTS + 5


def test_a_delivery_s_pushes_reach_redis_in_order_from_a_thread_of_their_own(tmp_path: Path) -> None:
    """The pusher against a real Redis: 2,000 results at once are pushed while the delivery goes on, from offset 0;
    the control: fewer than that, within 2 s, are not pushed (the final result carries them)."""
    import redis as redis_client

    with redis_server(tmp_path / "redis") as server:
        client = redis_client.Redis.from_url(server.url())
        few = _Pusher(client, "task-few", 1)
        for index in range(10):
            few.add([f"h{index}", "tcp/80", "pass", "open", ""])
        assert len(few.end()) == 10
        assert client.llen(progress_key("task-few")) == 0

        many = _Pusher(client, "task-many", 2)
        for index in range(PROGRESS_EVERY_RESULTS + 5):
            many.add([f"h{index}", "tcp/80", "pass", "open", ""])
        give_up = time.monotonic() + 10
        while client.llen(progress_key("task-many")) == 0 and time.monotonic() < give_up:
            time.sleep(0.01)
        assert len(many.end()) == PROGRESS_EVERY_RESULTS + 5
        entries = [json.loads(entry) for entry in client.lrange(progress_key("task-many"), 0, -1)]
        assert [entry["attempt"] for entry in entries] == [2]
        assert entries[0]["from"] == 0 and len(entries[0]["results"]) >= PROGRESS_EVERY_RESULTS
        assert [row[0] for row in entries[0]["results"]] == [f"h{index}" for index in range(len(entries[0]["results"]))]
