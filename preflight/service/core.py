"""The running service's parts wired together once at start: store, keys, policy, limits and job runner."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from preflight import signing
from preflight.plan import count_checks
from preflight.probes import load_every_probe
from preflight.profiles import Profile, load_profiles
from preflight.resolution import source_address
from preflight.service import schema
from preflight.service.changes import Changes
from preflight.service.config import ServiceConfig
from preflight.service.intake import IntakeError, Submission
from preflight.service.jobs import InProcessJobs, JobSettings, ProbeSettings
from preflight.service.policy import TargetPolicy, check_rates, own_addresses
from preflight.service.sealing import Sealer, derive, load_or_create_master_key
from preflight.service.store import NewCheck, Store, make_engine

_log = logging.getLogger(__name__)
RESULTS_PER_VIEW = 1000
_submit_lock = threading.Lock()


@dataclass
class Service:
    config: ServiceConfig
    store: Store
    profiles: dict[str, Profile]
    policy: TargetPolicy
    sealer: Sealer
    session_secret: str
    public_key_line: str
    jobs: InProcessJobs
    # Answers that wait for a check to change (GET /api/v1/checks/<id>?wait=N) are woken by the store's commits.
    changes: Changes = field(default_factory=Changes)

    def __post_init__(self) -> None:
        self.store.on_change = self.changes.notify

    @classmethod
    def open(cls, config: ServiceConfig) -> Service:
        """Migrate the database, load or create the keys, and build (not start) the job runner."""
        config.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = Store(make_engine(config.database_url))
        schema.upgrade(store.engine)
        master = load_or_create_master_key(config.service_key_path)
        signing_key = signing.load_or_create_signing_key(config.signing_key_path)
        profiles = dict(load_profiles(known_checks=frozenset(load_every_probe())))
        policy = TargetPolicy(allowed=config.allow_targets, own=own_addresses())
        sealer = Sealer(master)
        probing = ProbeSettings(
            profiles=profiles,
            policy=policy,
            known_hosts=config.known_hosts_path,
            timeout=config.timeout,
            tcp_method=config.tcp_method,
        )
        settings = JobSettings(probing=probing, store=store, sealer=sealer, signing_key=signing_key)
        return cls(
            config=config,
            store=store,
            profiles=profiles,
            policy=policy,
            sealer=sealer,
            session_secret=derive(master, "session").hex(),
            public_key_line=signing.public_key_line(signing_key),
            jobs=_queue_jobs(config, store, sealer, signing_key) if config.queue_url
            else InProcessJobs(settings, config.workers),
        )

    def egress_for(self, submission: Submission) -> str:
        """The address support's probes leave from: as configured, else the kernel's pick (no packet is sent)."""
        if self.config.egress_address:
            return self.config.egress_address
        for _, addresses in submission.targets:
            for address in addresses:
                picked = source_address(address)
                if picked:
                    return picked
        return ""

    def submit(
        self,
        submission: Submission,
        *,
        ticket: str,
        contact: str,
        source: str,
        submitted_by: str,
        client: str,
        limit_client: bool,
        vantages: Sequence[str] = (),
        only: Sequence[str] = (),
    ) -> str:
        """Queue a valid submission within the rate limits (RateLimited otherwise); returns the check's id.

        With a queue, the check runs from each vantage asked for, by default from every vantage with a live worker
        (IntakeError for a vantage without one, NoWorker when no worker at all is connected).
        """
        chosen = self.choose_vantages(vantages)
        addresses = [address for _, pinned in submission.targets for address in pinned]
        checks = count_checks(submission.inventory, self.profiles, only)
        sealed = self.sealer.seal(submission.text.encode())
        egress = "" if self.config.queue_url else self.egress_for(submission)
        # Submissions arrive on several threads: counting and recording one must not interleave with another's.
        with _submit_lock:
            check_rates(self.store, self.config.limits, client if limit_client else None, addresses)
            check_id = self.store.create_check(
                NewCheck(
                    ticket=ticket,
                    contact=contact,
                    source=source,
                    submitted_by=submitted_by,
                    client_address=client,
                    product=submission.product,
                    targets=[(name, address) for name, pinned in submission.targets for address in pinned],
                    total=checks * max(1, len(chosen)),
                    sealed_inventory=sealed,
                    vantages=chosen,
                    egress_address=egress,
                    inventory_sha256=submission.inventory.sha256,
                    only=only,
                )
            )
        _log.info("check %s queued: %d host(s), ticket %r, from %s", check_id, len(submission.inventory.hosts), ticket,
                  client)
        self.jobs.submitted()
        return check_id

    def live_vantages(self) -> tuple[str, ...]:
        """The vantages a check can be asked to run from now: none when the service runs checks itself."""
        return self.jobs.live_vantages()

    def choose_vantages(self, asked: Sequence[str]) -> tuple[str, ...]:
        live = self.live_vantages()
        if not self.config.queue_url:
            if asked:
                raise IntakeError("this service runs checks from its own network; it has no vantages to choose",
                                  "vantages")
            return ()
        if not live:
            raise NoWorker("no worker is connected to the queue yet; try again shortly")
        unknown = [name for name in asked if name not in live]
        if unknown:
            raise IntakeError(f"no worker of vantage {unknown[0]} is connected; connected: {', '.join(live)}",
                              "vantages")
        return tuple(dict.fromkeys(asked)) or live

    def view(self, check_id: str, since: int = 0, limit: int = RESULTS_PER_VIEW) -> dict[str, Any] | None:
        """A check as the pages and the API show it, with at most `limit` of its results from the `since`-th on
        (a check of thousands of hosts has tens of thousands); None for an id that names nothing."""
        import json

        row = self.store.get(check_id)
        if row is None:
            return None
        report = json.loads(row.report_json) if row.report_json else None
        return {
            "row": row,
            "results": self.store.results(check_id, since, limit),
            "report": report,
            "egress": row.egress_address or checked_from(report, row.vantages),
        }


class NoWorker(Exception):
    """No worker is connected to the queue: a submission cannot be sent anywhere yet (503, Retry-After)."""


def checked_from(report: Mapping[str, Any] | None, vantages: str) -> str:
    """Where a check was made from, as its page says it: each vantage and the address its probes left from."""
    if report is None:
        return ", ".join(name for name in vantages.split(",") if name)
    probers = [vantage["prober"] for vantage in report["vantages"]] if "vantages" in report else [report["prober"]]
    shown = []
    for prober in probers:
        address = prober.get("egress_address") or ", ".join(prober["addresses"])
        shown.append(f"{prober['vantage']} ({address})" if prober.get("vantage") else address)
    return "; ".join(shown)


def _queue_jobs(config: ServiceConfig, store: Store, sealer: Sealer, signing_key: Any) -> Any:
    """The queue's dispatcher and collector, when the service hands checks to workers (--queue)."""
    from preflight.service.queue import QueueJobs, QueueSettings, make_app

    queue_key = load_or_create_master_key(config.queue_key_path)
    return QueueJobs(QueueSettings(
        store=store,
        db_sealer=sealer,
        queue_sealer=Sealer(queue_key),
        signing_key=signing_key,
        app=make_app(config.queue_url, config.visibility_timeout),
        batch_size=config.batch_size,
        reports_dir=config.state / "reports",
    ))
