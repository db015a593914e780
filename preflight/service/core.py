"""The running service's parts wired together once at start: store, keys, policy, limits and job runner."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from preflight import signing
from preflight.plan import build_plan
from preflight.probes import registry
from preflight.profiles import Profile, load_profiles
from preflight.resolution import source_address
from preflight.service import schema
from preflight.service.config import ServiceConfig
from preflight.service.intake import Submission
from preflight.service.jobs import InProcessJobs, JobSettings, ProbeSettings
from preflight.service.policy import TargetPolicy, check_rates, own_addresses
from preflight.service.sealing import Sealer, derive, load_or_create_master_key
from preflight.service.store import NewCheck, Store, make_engine

_log = logging.getLogger(__name__)
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

    @classmethod
    def open(cls, config: ServiceConfig) -> Service:
        """Migrate the database, load or create the keys, and build (not start) the job runner."""
        config.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = Store(make_engine(config.database_url))
        schema.upgrade(store.engine)
        master = load_or_create_master_key(config.service_key_path)
        signing_key = signing.load_or_create_signing_key(config.signing_key_path)
        profiles = dict(load_profiles(known_checks=frozenset(registry())))
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
            jobs=InProcessJobs(settings, config.workers),
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
    ) -> str:
        """Queue a valid submission within the rate limits (RateLimited otherwise); returns the check's id."""
        addresses = [address for _, pinned in submission.targets for address in pinned]
        plans = build_plan(submission.inventory, self.profiles)
        sealed = self.sealer.seal(submission.text.encode())
        egress = self.egress_for(submission)
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
                    total=sum(len(plan.targets) for plan in plans),
                    sealed_inventory=sealed,
                    vantage="",
                    egress_address=egress,
                )
            )
        _log.info("check %s queued: %d host(s), ticket %r, from %s", check_id, len(plans), ticket, client)
        self.jobs.submitted()
        return check_id

    def view(self, check_id: str) -> dict[str, Any] | None:
        """A check as the pages and the API show it; None for an id that names nothing."""
        import json

        row = self.store.get(check_id)
        if row is None:
            return None
        report = json.loads(row.report_json) if row.report_json else None
        return {
            "row": row,
            "results": self.store.results(check_id),
            "report": report,
            "egress": row.egress_address or (", ".join(report["prober"]["addresses"]) if report else ""),
        }
