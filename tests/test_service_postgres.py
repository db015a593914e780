"""`preflight serve --db postgresql://...` against a real PostgreSQL server from Debian, checking a lab container.

scripts/test.sh installs PostgreSQL and starts its cluster (lab/engine.sh). Each run makes its own role, with a
password of its own, and its own database, and drops both afterwards. The check goes through the API like any
client's; its signed report is verified with the key the service publishes; the database's dump and the service's
log hold none of the passwords; Alembic's head revision is recorded; and a restart keeps the report.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from preflight.service import schema
from tests.browser import launched_chromium
from tests.lab import LabTarget, new_secret
from tests.requirements import need
from tests.service_process import ServiceProcess, host, running_service
from tests.test_service_browser import Served, check_id_of, fill_intake, keep, submit_intake, visit

PSQL_SECONDS = 60


@dataclass(frozen=True)
class Database:
    name: str
    role: str
    password: str = field(repr=False)
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://{self.role}:{self.password}@127.0.0.1:{self.port}/{self.name}"


def postgres_unavailable_reason() -> str | None:
    """Why the tests cannot use the machine's PostgreSQL, or None when they can."""
    if os.geteuid() != 0:
        return "the PostgreSQL tests need root (to run psql as the postgres user)"
    for tool in ("pg_lsclusters", "psql", "pg_dump", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool} is missing; scripts/test.sh installs PostgreSQL (lab/engine.sh lab_start_postgresql)"
    if online_port() is None:
        return "no PostgreSQL cluster is online; scripts/test.sh starts one (pg_ctlcluster VERSION main start)"
    return None


def online_port() -> int | None:
    """The port of the first online cluster pg_lsclusters lists."""
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, timeout=30, check=True).stdout
    for line in listed.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].startswith("online"):
            return int(fields[2])
    return None


def as_postgres(command: list[str], stdin: str = "") -> str:
    completed = subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        input=stdin, capture_output=True, text=True, timeout=PSQL_SECONDS, check=False, cwd="/",
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def psql(sql: str, database: str = "postgres") -> str:
    """Run SQL as the postgres superuser; the SQL goes on stdin, so no password shows in a process list."""
    return as_postgres(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-f", "-"], sql)


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    reason = postgres_unavailable_reason()
    need(reason is None, reason or "")
    port = online_port()
    assert port is not None
    suffix = secrets.token_hex(4)
    made = Database(f"preflight_test_{suffix}", f"preflight_test_{suffix}", new_secret("db"), port)
    psql(f"CREATE ROLE {made.role} LOGIN PASSWORD '{made.password}';\n")
    try:
        psql(f"CREATE DATABASE {made.name} OWNER {made.role};\n")
        yield made
    finally:
        psql(f"DROP DATABASE IF EXISTS {made.name} WITH (FORCE);\nDROP ROLE IF EXISTS {made.role};\n")


@dataclass
class PostgresRun:
    # Out of the repr: a failing test's traceback prints its arguments, and these hold passwords and the DB URL.
    database: Database = field(repr=False)
    target: LabTarget = field(repr=False)
    service: ServiceProcess = field(repr=False)
    check_id: str
    state: dict[str, object] = field(repr=False)
    report_json: bytes
    signature: bytes
    public_key: str


@pytest.fixture(scope="module")
def postgres_run(
    database: Database, pbx_target: LabTarget, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresRun]:
    """One real check of the lab target through the API of a service whose store is PostgreSQL."""
    state = tmp_path_factory.mktemp("postgres-service")
    args = ["--allow-targets", f"{pbx_target.ip}/32"]
    with running_service(state, args, db=database.url) as service:
        inventory = {"hosts": [host(pbx_target.ip, name="lab", gui_password=pbx_target.gui_password,
                                    root_password=pbx_target.root_password)]}
        answer = service.post_check({"ticket": "T-postgres", "inventory": inventory})
        assert answer.status_code == 202, answer.text
        check_id = answer.json()["id"]
        done = service.wait_done(check_id)
        report_json = service.get(f"/api/v1/checks/{check_id}/report.json").content
        signature = service.get(f"/api/v1/checks/{check_id}/report.json.sig").content
        public_key = service.get("/api/v1/signing-key").text
        yield PostgresRun(database, pbx_target, service, check_id, done, report_json, signature, public_key)


def test_check_through_postgres_is_done_with_every_lab_service_passing(postgres_run: PostgresRun) -> None:
    state = postgres_run.state

    assert state["state"] == "done", state
    report = state["report"]
    assert isinstance(report, dict)
    (lab,) = report["hosts"]
    statuses = {check["id"]: check["status"] for check in lab["checks"]}
    for check_id in ("tcp/2020", "service/2020", "ssh-root/2020", "tcp/443", "gui-login/443"):
        assert statuses[check_id] == "pass", (check_id, statuses)
    assert postgres_run.service.probed() == [postgres_run.target.ip]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


def test_the_intake_form_in_chromium_runs_a_check_stored_in_postgres(postgres_run: PostgresRun, browser: Any) -> None:
    """As the SQLite browser tests do: a customer fills the form, waits for the verdict, and reads the page."""
    served = Served(postgres_run.service, postgres_run.target)
    with visit(browser, served) as seen:
        seen.page.goto(postgres_run.service.url + "/")
        fill_intake(seen, postgres_run.target, ticket="T-postgres-form")
        assert submit_intake(seen).status == 303
        check_id = check_id_of(seen.page.url)
        postgres_run.service.wait_done(check_id)
        seen.page.wait_for_selector("h1.verdict.ready", timeout=60_000)
        html = keep(served, seen)
    assert "READY" in html and "T-postgres-form" in html
    assert not seen.page_errors and not seen.dialogs
    # The id is the service's own (URL-safe base64 characters), read back from the page's address.
    stored = psql(f"SELECT verdict FROM checks WHERE id = '{check_id}';", postgres_run.database.name)  # noqa: S608
    assert "ready" in stored
    for secret in (postgres_run.target.root_password, postgres_run.target.gui_password):
        assert all(secret not in page for page in served.pages)


def test_signed_report_verifies_with_the_published_key(postgres_run: PostgresRun, tmp_path: Path) -> None:
    report, signature, key = tmp_path / "report.json", tmp_path / "report.json.sig", tmp_path / "service.pub"
    report.write_bytes(postgres_run.report_json)
    signature.write_bytes(postgres_run.signature)
    key.write_text(postgres_run.public_key)

    assert verify(report, signature, key).returncode == 0
    # The control: one byte changed, and the same command refuses it.
    report.write_bytes(postgres_run.report_json.replace(b'"pass"', b'"fail"', 1))
    refused = verify(report, signature, key)
    assert refused.returncode == 1, refused.stdout + refused.stderr


def verify(report: Path, signature: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", "verify", str(report), "--signature", str(signature), "--key", str(key)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_database_dump_and_service_log_hold_no_password(postgres_run: PostgresRun) -> None:
    database, target = postgres_run.database, postgres_run.target
    dump = as_postgres(["pg_dump", "--no-owner", database.name])
    log = postgres_run.service.log()

    # The control: the dump is of this service's database, and it holds the check and its report.
    assert postgres_run.check_id in dump
    assert "T-postgres" in dump
    assert f"probing {target.ip}" in log
    secrets_used = {"root password": target.root_password, "GUI password": target.gui_password,
                    "database password": database.password}
    # Only the names of what leaked: an assertion must not print the secret it found.
    assert [label for label, secret in secrets_used.items() if secret in dump] == []
    assert [label for label, secret in secrets_used.items() if secret in log] == []


def test_migrations_brought_the_database_to_alembic_head(postgres_run: PostgresRun) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(schema.__file__).parent / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()

    assert head is not None
    recorded = psql("SELECT version_num FROM alembic_version;\n", postgres_run.database.name).split()
    assert recorded == [head]


def test_restart_on_the_same_database_keeps_the_done_report(postgres_run: PostgresRun) -> None:
    service = postgres_run.service
    service.stop()
    service.start()

    state = service.get(f"/api/v1/checks/{postgres_run.check_id}").json()
    assert state["state"] == "done"
    assert service.get(f"/api/v1/checks/{postgres_run.check_id}/report.json").content == postgres_run.report_json
    assert service.get(f"/api/v1/checks/{postgres_run.check_id}/report.json.sig").content == postgres_run.signature
    assert service.get("/api/v1/signing-key").text == postgres_run.public_key
