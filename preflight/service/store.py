"""The service's records (check requests, their progress and signed reports, accounts, tokens) in SQLAlchemy.

SQLite is the embedded default; PostgreSQL works through the same models. The schema is Alembic's
(`migrations/`), applied when the service starts; nothing here creates a table.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, defer, mapped_column, sessionmaker

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ENDED = (DONE, FAILED)


class Base(DeclarativeBase):
    pass


class CheckRow(Base):
    """One request to check the hosts of one inventory, from submission to its signed report."""

    __tablename__ = "checks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket: Mapped[str] = mapped_column(String(200), default="")
    contact: Mapped[str] = mapped_column(String(320), default="")
    source: Mapped[str] = mapped_column(String(16))  # "web", "api" or "support"
    submitted_by: Mapped[str] = mapped_column(String(200), default="")
    client_address: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    product: Mapped[str] = mapped_column(String(64), default="")
    # What the hosts are, without a secret: "name address" per line, for the dashboard and its filter.
    hosts_text: Mapped[str] = mapped_column(Text, default="")
    # The vantages asked for, comma-separated; empty for a check run in the service's own process.
    vantages: Mapped[str] = mapped_column(String(500), default="")
    # The kinds of check asked for, comma-separated (as check --only); empty for every check of the profile.
    only_kinds: Mapped[str] = mapped_column(String(500), default="")
    inventory_sha256: Mapped[str | None] = mapped_column(String(64))
    egress_address: Mapped[str] = mapped_column(String(64), default="")
    # The inventory with its passwords, encrypted; erased when the check ends.
    sealed_inventory: Mapped[bytes | None] = mapped_column(LargeBinary)
    verdict: Mapped[str | None] = mapped_column(String(16))
    report_json: Mapped[str | None] = mapped_column(Text)
    report_sig: Mapped[str | None] = mapped_column(Text)
    # A report too large to keep in a row is a file in the service's state folder (its name, relative to it).
    report_file: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)


class CheckTargetRow(Base):
    """An address a check was allowed to probe, pinned at submission (the per-target rate limit counts these)."""

    __tablename__ = "check_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class CheckResultRow(Base):
    """One finished check of one host, stored as it ends so the pages can show progress."""

    __tablename__ = "check_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    result_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    remediation: Mapped[str] = mapped_column(Text, default="")
    # The queue task that reported it, and which delivery of that task: a later delivery replaces an earlier one.
    vantage: Mapped[str | None] = mapped_column(String(64))
    job: Mapped[str | None] = mapped_column(String(200))
    attempt: Mapped[int | None] = mapped_column(Integer)


class JobRow(Base):
    """One batch of a check sent to one vantage's queue, until its result (or its failure) comes back."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"), index=True)
    vantage: Mapped[str] = mapped_column(String(64))
    batch: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending, sent, done, failed
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_json: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class ProbeRow(Base):
    """Every address the service started to probe: the audit trail that proves what it never touched."""

    __tablename__ = "probes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_id: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserRow(Base):
    """A support engineer who may open /support; the password is an argon2 hash."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TokenRow(Base):
    """An API token; only its SHA-256 is kept, and its first characters to tell tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class NewCheck:
    """What a submission hands to the store: the public facts and the sealed inventory."""

    ticket: str
    contact: str
    source: str
    submitted_by: str
    client_address: str
    product: str
    targets: Sequence[tuple[str, str]]  # (host name, pinned address)
    total: int
    sealed_inventory: bytes
    vantages: Sequence[str]
    egress_address: str
    inventory_sha256: str | None = None
    only: Sequence[str] = ()


def utc_now() -> datetime:
    return datetime.now(UTC)


def engine_url(url: str) -> str:
    """SQLAlchemy's URL for what the operator typed: `postgresql://` means psycopg 3, the driver we ship."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and secure_delete, so erased secrets are zeroed."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL loses no committed transaction when the service crashes (only on power loss),
            # and saves an fsync per commit: every submission and every result is one.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _unheard(_check_id: str) -> None:
    """No one listens for changes (a store used by a command, not by the running service)."""


def _aware(value: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; every time stored here is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _table(model: type[Base]) -> Table:
    """A model's table, for the table's own inserts of many rows (the ORM's bulk insert is about half as fast)."""
    return cast(Table, model.__table__)


class Store:
    """Every read and write the service and its jobs make; one short transaction each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._claim_lock = threading.Lock()
        # SQLite has one writer at a time, and a writer that finds the database locked sleeps in its busy
        # handler (up to 100 ms a try): threads of this process take turns here instead, and never sleep there.
        sqlite = engine.dialect.name == "sqlite"
        self._turn: AbstractContextManager[Any] = threading.RLock() if sqlite else nullcontext()
        # Told the id of a check whose state or progress changed, once that is committed (answers that wait for a
        # change are woken by it: preflight.service.changes).
        self.on_change: Callable[[str], None] = _unheard
        self._held = threading.local()

    @contextmanager
    def changes_held(self) -> Iterator[None]:
        """The changes this thread commits inside are told at the end, once per check: a round of the queue's
        collector that stores a check's last results and finishes it wakes each waiting answer once, with the
        verdict, rather than first with the results and again while the report is being written."""
        if getattr(self._held, "checks", None) is not None:
            yield
            return
        held: dict[str, None] = {}
        self._held.checks = held
        try:
            yield
        finally:
            self._held.checks = None
            for check_id in held:
                self.on_change(check_id)

    def _changed(self, check_id: str) -> None:
        held = getattr(self._held, "checks", None)
        if held is None:
            self.on_change(check_id)
        else:
            held[check_id] = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._turn, self._sessions() as session, session.begin():
            yield session

    # Checks ---------------------------------------------------------------------------------------------------
    def create_check(self, new: NewCheck) -> str:
        """Store a submission as queued; its id is the capability that opens its pages."""
        check_id = secrets.token_urlsafe(24)
        now = utc_now()
        with self.session() as session:
            session.add(
                CheckRow(
                    id=check_id,
                    ticket=new.ticket,
                    contact=new.contact,
                    source=new.source,
                    submitted_by=new.submitted_by,
                    client_address=new.client_address,
                    created_at=now,
                    state=QUEUED,
                    attempts=0,
                    total=new.total,
                    done=0,
                    product=new.product,
                    hosts_text="\n".join(f"{name} {address}" for name, address in new.targets),
                    vantages=",".join(new.vantages),
                    only_kinds=",".join(new.only),
                    inventory_sha256=new.inventory_sha256,
                    egress_address=new.egress_address,
                    sealed_inventory=new.sealed_inventory,
                )
            )
            session.flush()
            if new.targets:
                # One executemany, not an object each (10,000 hosts: 0.1 s, not 0.6 s).
                session.execute(insert(_table(CheckTargetRow)), [
                    {"check_id": check_id, "host": name, "address": address, "created_at": now}
                    for name, address in new.targets
                ])  # fmt: skip
        return check_id

    def get(self, check_id: str) -> CheckRow | None:
        with self.session() as session:
            return session.get(CheckRow, check_id)

    def targets(self, check_id: str) -> list[tuple[str, str]]:
        with self.session() as session:
            rows = session.execute(
                select(CheckTargetRow.host, CheckTargetRow.address)
                .where(CheckTargetRow.check_id == check_id)
                .order_by(CheckTargetRow.id)
            )
            return [(host, address) for host, address in rows]

    def results(self, check_id: str, since: int = 0, limit: int | None = None) -> list[CheckResultRow]:
        """A check's finished results in the order they came, from the `since`-th on, at most `limit` of them."""
        statement = (
            select(CheckResultRow).where(CheckResultRow.check_id == check_id).order_by(CheckResultRow.id).offset(since)
        )
        if limit is not None:
            statement = statement.limit(limit)
        with self.session() as session:
            return list(session.scalars(statement))

    def claim_next(self) -> CheckRow | None:
        """The oldest queued check, now marked running (one claimer at a time in this process)."""
        with self._claim_lock, self.session() as session:
            row = session.scalars(
                select(CheckRow).where(CheckRow.state == QUEUED).order_by(CheckRow.created_at).limit(1)
            ).first()
            if row is None:
                return None
            row.state = RUNNING
            row.started_at = utc_now()
            row.attempts += 1
        self._changed(row.id)
        return row

    def claim_queued(self, max_hosts: int) -> list[CheckRow]:
        """The oldest queued checks, up to `max_hosts` hosts in all (always one check at least), now marked running.

        The UPDATE names only checks still queued, so two claimers never take the same check; on PostgreSQL the
        candidates are locked with SKIP LOCKED, so a second claimer takes the next ones rather than waiting.
        """
        with self._claim_lock, self.session() as session:
            candidates = session.execute(
                select(CheckRow.id, CheckRow.hosts_text)
                .where(CheckRow.state == QUEUED)
                .order_by(CheckRow.created_at, CheckRow.id)
                .limit(max(1, max_hosts))
                .with_for_update(skip_locked=True)
            ).all()
            chosen: list[str] = []
            hosts = 0
            for check_id, hosts_text in candidates:
                count = max(1, len(hosts_text.splitlines()))
                if chosen and hosts + count > max_hosts:
                    break
                chosen.append(check_id)
                hosts += count
            if not chosen:
                return []
            claimed = list(session.scalars(
                update(CheckRow)
                .where(CheckRow.id.in_(chosen), CheckRow.state == QUEUED)
                .values(state=RUNNING, started_at=utc_now(), attempts=CheckRow.attempts + 1)
                .returning(CheckRow.id)
                .execution_options(synchronize_session=False)
            ))
            rows = {row.id: row for row in session.scalars(select(CheckRow).where(CheckRow.id.in_(claimed)))}
        for check_id in rows:
            self._changed(check_id)
        return [rows[check_id] for check_id in chosen if check_id in rows]

    def targets_of(self, check_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """The pinned (host, address) pairs of several checks, in one query."""
        found: dict[str, list[tuple[str, str]]] = {check_id: [] for check_id in check_ids}
        with self.session() as session:
            rows = session.execute(
                select(CheckTargetRow.check_id, CheckTargetRow.host, CheckTargetRow.address)
                .where(CheckTargetRow.check_id.in_(check_ids))
                .order_by(CheckTargetRow.id)
            )
            for check_id, host, address in rows:
                found[check_id].append((host, address))
        return found

    def add_results(self, results: Sequence[tuple[str, str, str, str, str, str]]) -> None:
        """Finished checks of hosts, (check id, host, result id, status, summary, remediation) each, in one commit."""
        if not results:
            return
        counts: dict[str, int] = {}
        for check_id, *_ in results:
            counts[check_id] = counts.get(check_id, 0) + 1
        with self.session() as session:
            session.execute(insert(_table(CheckResultRow)), [
                {"check_id": check_id, "host": host, "result_id": result_id, "status": status, "summary": summary,
                 "remediation": remediation}
                for check_id, host, result_id, status, summary, remediation in results
            ])
            for check_id, count in counts.items():
                session.execute(update(CheckRow).where(CheckRow.id == check_id).values(done=CheckRow.done + count))
        for check_id in counts:
            self._changed(check_id)

    def record_probes(self, probes: Sequence[tuple[str, str]]) -> None:
        """Addresses about to be probed, (check id, address) each, in one commit."""
        if not probes:
            return
        now = utc_now()
        with self.session() as session:
            session.execute(insert(_table(ProbeRow)), [
                {"check_id": check_id, "address": address, "started_at": now} for check_id, address in probes
            ])


    def finish(
        self, check_id: str, verdict: str, report_json: str | None, report_sig: str, report_file: str | None = None
    ) -> None:
        """The signed report is stored and the credentials erased in the same transaction."""
        with self.session() as session:
            session.execute(
                update(CheckRow)
                .where(CheckRow.id == check_id)
                .values(
                    state=DONE,
                    verdict=verdict,
                    report_json=report_json,
                    report_file=report_file,
                    report_sig=report_sig,
                    finished_at=utc_now(),
                    sealed_inventory=None,
                    error=None,
                )
            )
        self._changed(check_id)

    def fail(self, check_id: str, reason: str) -> None:
        with self.session() as session:
            session.execute(
                update(CheckRow)
                .where(CheckRow.id == check_id)
                .values(state=FAILED, error=reason, finished_at=utc_now(), sealed_inventory=None)
            )
        self._changed(check_id)

    def requeue_unfinished(self, max_attempts: int) -> tuple[int, int]:
        """After a restart: checks that were running go back to the queue, or fail once out of attempts."""
        with self.session() as session:
            stale = list(session.scalars(select(CheckRow).where(CheckRow.state == RUNNING)))
            requeued = failed = 0
            for row in stale:
                session.execute(delete(CheckResultRow).where(CheckResultRow.check_id == row.id))
                row.done = 0
                if row.attempts >= max_attempts:
                    row.state, row.finished_at = FAILED, utc_now()
                    row.error = "the service stopped during every attempt"
                    row.sealed_inventory = None
                    failed += 1
                else:
                    row.state, row.started_at = QUEUED, None
                    requeued += 1
            return requeued, failed

    def list_checks(self, query: str = "", limit: int = 200) -> list[CheckRow]:
        """The newest checks, filtered by ticket or address when `query` is given."""
        statement = select(CheckRow).order_by(CheckRow.created_at.desc()).limit(limit)
        if query:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            statement = statement.where(
                or_(CheckRow.ticket.like(pattern, escape="\\"), CheckRow.hosts_text.like(pattern, escape="\\"))
            )
        with self.session() as session:
            return list(session.scalars(statement))

    # Queue jobs ---------------------------------------------------------------------------------------------
    def add_jobs(self, check_id: str, jobs: Sequence[tuple[str, int, str]]) -> None:
        """The batches of a claimed check, one per (vantage, batch), each with its task id; not yet sent."""
        with self.session() as session:
            for vantage, batch, task_id in jobs:
                session.add(JobRow(check_id=check_id, vantage=vantage, batch=batch, task_id=task_id,
                                   state="pending", attempt=0))

    def jobs(self, *, check_id: str | None = None, states: Sequence[str] = ()) -> list[JobRow]:
        """Jobs without their results (a batch's report is loaded alone, with `job_document`)."""
        statement = select(JobRow).options(defer(JobRow.result_json, raiseload=True)).order_by(JobRow.id)
        if check_id is not None:
            statement = statement.where(JobRow.check_id == check_id)
        if states:
            statement = statement.where(JobRow.state.in_(states))
        with self.session() as session:
            return list(session.scalars(statement))

    def job_document(self, job_id: int) -> str:
        with self.session() as session:
            return session.scalar(select(JobRow.result_json).where(JobRow.id == job_id)) or "{}"

    def job_sent(self, task_id: str) -> None:
        with self.session() as session:
            session.execute(update(JobRow).where(JobRow.task_id == task_id).values(state="sent", sent_at=utc_now()))

    def job_results(self, job: JobRow, attempt: int, results: Sequence[Sequence[str]], offset: int = 0) -> None:
        """What a delivery of a task has finished: `results` from the `offset`-th of that delivery's results on (a
        snapshot of all of them has offset 0). Results already stored are skipped; a newer delivery's results replace
        an older one's, and an older delivery's are ignored."""
        with self.session() as session:
            row = session.get(JobRow, job.id)
            if row is None or row.state in ("done", "failed") or attempt < row.attempt:
                return
            # Counted within the check (its index): the job column has none.
            of_job = (CheckResultRow.check_id == row.check_id, CheckResultRow.job == row.task_id)
            seen = session.scalar(select(func.count()).select_from(CheckResultRow).where(*of_job)) or 0
            removed = 0
            if attempt > row.attempt:
                session.execute(delete(CheckResultRow).where(*of_job))
                removed, seen = seen, 0
                row.attempt = attempt
            if offset > seen:  # results before these were lost with the broker: the task's final result has all
                return
            fresh = [
                {"check_id": row.check_id, "host": host, "result_id": result_id, "status": status,
                 "summary": summary, "remediation": remediation, "vantage": row.vantage, "job": row.task_id,
                 "attempt": attempt}
                for host, result_id, status, summary, remediation in results[seen - offset:]
            ]
            if fresh:
                # The table's own insert: 8,000 results in 0.06 s, where the ORM's bulk insert takes 0.1 s.
                session.execute(insert(_table(CheckResultRow)), fresh)
            if not fresh and not removed:
                return
            session.execute(update(CheckRow).where(CheckRow.id == row.check_id)
                            .values(done=CheckRow.done + len(fresh) - removed))
        self._changed(job.check_id)

    def job_ended(self, task_id: str, *, result_json: str | None = None, error: str | None = None) -> None:
        with self.session() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.task_id == task_id, JobRow.state.in_(("pending", "sent")))
                .values(state="failed" if error is not None else "done", result_json=result_json, error=error)
            )

    def job_resent(self, task_id: str) -> None:
        with self.session() as session:
            session.execute(update(JobRow).where(JobRow.task_id == task_id).values(sent_at=utc_now()))

    def clear_jobs(self, check_id: str) -> None:
        with self.session() as session:
            session.execute(update(JobRow).where(JobRow.check_id == check_id).values(result_json=None))

    def running_without_jobs(self) -> list[str]:
        """Checks marked running that have no job: the service stopped between claiming and sending them."""
        with self.session() as session:
            has_jobs = select(JobRow.check_id).distinct()
            return list(session.scalars(
                select(CheckRow.id).where(CheckRow.state == RUNNING, CheckRow.id.not_in(has_jobs))
            ))

    def requeue(self, check_ids: Sequence[str]) -> None:
        with self.session() as session:
            session.execute(update(CheckRow).where(CheckRow.id.in_(check_ids)).values(state=QUEUED, started_at=None))

    # Rate limits ----------------------------------------------------------------------------------------------

    def counts_in_window(
        self, client_address: str | None, addresses: Sequence[str], window: timedelta = timedelta(hours=1)
    ) -> tuple[tuple[int, datetime | None], dict[str, tuple[int, datetime | None]]]:
        """As `oldest_in_window` for a client and for each of several addresses, in one query."""
        since = utc_now() - window
        parts = []
        if client_address is not None:
            parts.append(select(literal(""), func.count(), func.min(CheckRow.created_at))
                         .where(CheckRow.client_address == client_address, CheckRow.created_at > since))  # fmt: skip
        if addresses:
            parts.append(select(CheckTargetRow.address, func.count(), func.min(CheckTargetRow.created_at))
                         .where(CheckTargetRow.address.in_(addresses), CheckTargetRow.created_at > since)
                         .group_by(CheckTargetRow.address))  # fmt: skip
        client: tuple[int, datetime | None] = (0, None)
        targets: dict[str, tuple[int, datetime | None]] = {address: (0, None) for address in addresses}
        if not parts:
            return client, targets
        with self.session() as session:
            rows = session.execute(union_all(*parts) if len(parts) > 1 else parts[0]).all()
        for address, count, oldest in rows:
            if address == "" and client_address is not None:
                client = (int(count), _aware(oldest))
            elif address:
                targets[address] = (int(count), _aware(oldest))
        return client, targets

    # Accounts -------------------------------------------------------------------------------------------------
    def add_user(self, name: str, password_hash: str) -> bool:
        """False when the name is taken; its password then changes."""
        with self.session() as session:
            row = session.get(UserRow, name)
            if row is not None:
                row.password_hash = password_hash
                return False
            session.add(UserRow(name=name, password_hash=password_hash, created_at=utc_now()))
            return True

    def user_hash(self, name: str) -> str | None:
        with self.session() as session:
            row = session.get(UserRow, name)
            return None if row is None else row.password_hash

    def add_token(self, name: str, token_sha256: str, prefix: str) -> None:
        with self.session() as session:
            session.add(TokenRow(name=name, token_sha256=token_sha256, prefix=prefix, created_at=utc_now()))

    def token_name(self, token_sha256: str) -> str | None:
        with self.session() as session:
            row = session.scalars(select(TokenRow).where(TokenRow.token_sha256 == token_sha256)).first()
            return None if row is None else row.name


def created_at(row: CheckRow) -> datetime:
    value = _aware(row.created_at)
    assert value is not None  # noqa: S101 - the column is NOT NULL
    return value
