"""A service upgraded before its workers: a batch that a worker of the earlier release sends (the whole document,
not a line per host) is written into the signed report as the current release's batch is. A real Redis holds the
task results; nothing is probed (the batches' results are stored as a worker would store them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from preflight import signing
from preflight.service import schema
from preflight.service.intake import sealed_text
from preflight.service.queue import QueueJobs, QueueSettings, make_app
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


@pytest.mark.parametrize("release", ["earlier", "current"])
def test_a_batch_of_a_worker_of_either_release_is_written_into_the_signed_report(tmp_path: Path, release: str) -> None:
    with redis_server(tmp_path / "redis") as redis:
        store = Store(make_engine(f"sqlite:///{tmp_path / 'service.db'}"))
        schema.upgrade(store.engine)
        sealer = Sealer(load_or_create_master_key(tmp_path / "service.key"))
        key = Ed25519PrivateKey.generate()
        app = make_app(redis.url())
        jobs = QueueJobs(QueueSettings(store=store, db_sealer=sealer, queue_sealer=sealer, signing_key=key, app=app,
                                       reports_dir=tmp_path / "reports"))  # fmt: skip
        inventory = {"hosts": [{"name": "h0", "product": "pbxware", "address": "127.0.0.2"}]}
        check_id = store.create_check(NewCheck(
            ticket="T-upgrade", contact="", source="api", submitted_by="test", client_address="127.0.0.1",
            product="pbxware", targets=[("h0", "127.0.0.2")], total=1,
            sealed_inventory=sealer.seal(sealed_text(inventory).encode()), vantages=["eu"], egress_address="",
        ))  # fmt: skip
        row = store.claim_next()
        assert row is not None and row.id == check_id
        jobs._plan_jobs(row)
        [job] = store.jobs(check_id=check_id)
        store.job_sent(job.task_id)
        document = _document("h0")
        results = [["h0", "tcp/2020", "fail", "filtered", ""]]
        batch = (
            {"attempt": 1, "document": document, "results": results}
            if release == "earlier"
            else {"attempt": 1, "batch": EncodedBatch.of(document).text(), "results": results}
        )
        app.backend.store_result(job.task_id, batch, "SUCCESS")
        for touched in jobs._poll():
            jobs._advance(touched)
        done = store.get(check_id)
    assert done is not None and done.state == "done", done and done.error
    assert done.report_json is not None and done.report_sig is not None
    report = json.loads(done.report_json)
    assert report["hosts"] == document["hosts"]
    assert report["prober"]["vantage"] == "eu"
    signing.verify(done.report_json.encode(), done.report_sig.encode(), key.public_key())
