"""Reports streamed as hosts complete: the same documents as the whole-report path, and no report lost to a failure.

The runner hands on host reports in the plan's order, reading the plan a batch at a time; the JSON, HTML and JUnit
reports written from that stream are the ones the whole-document renderers make of the same results; a write that
fails part way through leaves the report that was already there, and no temporary file.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import CheckResult, Finding, HostReport, RunReport, RunSummary, Status
from preflight.plan import HostPlan
from preflight.probes import Probe
from preflight.profiles import load_profiles
from preflight.render import html, junit
from preflight.render import json as json_report
from preflight.report_stream import RunReports
from preflight.runner import PlanRun
from preflight.target import Target
from tests.lab import SCHEMA

PROFILES = load_profiles()
EVIDENCE = {
    "state": "filtered",
    "reason": "no-response",
    "probes": 2,
    "icmp": {"type": 3, "code": 13, "meaning": "administratively prohibited", "from": "192.0.2.1"},
    "seen": ["a", "b"],
    "note": "ünïcode <b>&</b> \u2028 line",
}


def _check(check_id: str, status: Status, evidence: dict[str, object] | None = None) -> CheckResult:
    return CheckResult(
        id=check_id,
        requirement=f"{check_id} must work",
        status=status,
        summary=f"{check_id} is {status.value}",
        evidence=evidence or {},
        remediation="" if status is Status.PASS else f"fix {check_id}",
        duration_ms=12.345,
        port=2020 if check_id.startswith("tcp/") else None,
        purpose="SSH" if check_id.startswith("tcp/") else "",
    )


def _hosts(count: int) -> tuple[HostReport, ...]:
    hosts = []
    for number in range(count):
        tcp = _check("tcp/2020", Status.PASS if number % 3 else Status.FAIL, EVIDENCE)
        ssh = _check("ssh-root/2020", Status.SKIPPED, {"needs": "tcp/2020"}) if number % 3 == 0 else None
        checks = (_check("public-ip", Status.WARN), tcp, *((ssh,) if ssh else ()))
        hosts.append(HostReport(f"host-{number}", "pbxware", f"pbx{number}.example.com", f"192.0.2.{number}", checks))
    return tuple(hosts)


def _report(count: int) -> RunReport:
    return RunReport(
        tool_version="0.1.0",
        started_at="2026-11-25T10:00:00Z",
        finished_at="2026-11-25T10:00:03Z",
        prober_hostname="prober",
        prober_addresses=("192.0.2.254",),
        hosts=_hosts(count),
        warnings=("inventory.yaml holds plaintext passwords",),
        inventory_sha256="ab" * 32,
    )


def _stream(report: RunReport, folder: Path, *, html_report: bool = False, junit_report: bool = False) -> Path:
    """Write `report` the way `preflight check` does: hosts from an iterator, the summary asked for after them."""
    json_path = folder / "report.json"
    with RunReports(json_path, None, folder if html_report or junit_report else None) as reports:
        reports.write(iter(report.hosts), lambda: report.summary)
        reports.commit_json()
        if html_report:
            reports.write_html(folder / "report.html")
        if junit_report:
            reports.write_junit(folder / "report.xml")
    return json_path


@pytest.mark.parametrize("count", [0, 1, 7])
def test_streamed_json_is_the_document_the_whole_report_path_made(tmp_path: Path, count: int) -> None:
    report = _report(count)
    # What `preflight check` wrote before reports were streamed: the whole document, dumped at once.
    whole = json.dumps(json_report.to_document(report), indent=2, ensure_ascii=False) + "\n"

    streamed = json.loads(_stream(report, tmp_path).read_text(encoding="utf-8"))

    assert streamed == json.loads(whole)
    jsonschema.Draft202012Validator(SCHEMA).validate(streamed)
    assert streamed["summary"] == {"hosts": count, "ready": report.ready_hosts, "not_ready": count - report.ready_hosts}


def test_streamed_html_and_junit_are_the_pages_the_whole_document_renders(tmp_path: Path) -> None:
    report = _report(7)
    document = json_report.to_document(report)

    _stream(report, tmp_path, html_report=True, junit_report=True)

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page == html.render_document(document)
    # Not-ready hosts lead the page, in report order, then the ready ones.
    order = [int(part.split("<")[0]) for part in page.split('<section class="host')[0].split(">host-")[1:]]
    assert order == [0, 3, 6, 1, 2, 4, 5]
    assert (tmp_path / "report.xml").read_text(encoding="utf-8") == junit.render_document(document)
    # The spool is gone with the run: only the reports are left.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.html", "report.json", "report.xml"]


def test_a_host_failing_mid_stream_keeps_the_old_report_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    old = tmp_path / "report.json"
    old.write_text('{"the": "report of yesterday"}\n')

    def hosts_then_failure() -> Iterator[HostReport]:
        yield from _hosts(3)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"), RunReports(old, None, tmp_path) as reports:
        reports.write(hosts_then_failure(), lambda: _report(3).summary)

    assert old.read_text() == '{"the": "report of yesterday"}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]
    # Control: the same run that does not fail replaces the old report.
    _stream(_report(3), tmp_path)
    assert json.loads(old.read_text())["summary"]["hosts"] == 3


def _limit_file_size(limit: int) -> None:
    # A file grown past RLIMIT_FSIZE fails its write with EFBIG once SIGXFSZ, which would kill the process, is ignored.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_check_whose_json_write_fails_mid_stream_exits_2_and_keeps_the_old_report(tmp_path: Path) -> None:
    # Twenty loopback hosts make a JSON report of about 60 KB: it outgrows the 16 KB limit part way through.
    lines = ["hosts:"] + [
        f"  - {{name: h{number}, product: serverware, address: 127.0.0.{number + 1}, require_public_ip: false}}"
        for number in range(20)
    ]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.json"
    report.write_text('{"the": "report of yesterday"}\n')
    command = [sys.executable, "-m", "preflight", "check", str(inventory), "--only", "tcp", "--tcp-method",
               "connect", "--timeout", "2", "--json", str(report)]  # fmt: skip

    failed = subprocess.run(
        command, capture_output=True, text=True, timeout=120, preexec_fn=lambda: _limit_file_size(16 * 1024)
    )

    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.splitlines()[-1] == "preflight: error: cannot write the report: File too large"
    assert "Traceback" not in failed.stderr
    assert report.read_text() == '{"the": "report of yesterday"}\n'
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory.yaml", "report.json"]
    # Control: without the limit the same check writes its whole report in place of the old one.
    passed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert passed.returncode in (0, 1), passed.stderr
    document = json.loads(report.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert [host["name"] for host in document["hosts"]] == [f"h{number}" for number in range(20)]


# The runner: stand-in probes whose durations make hosts complete out of the plan's order.


def _sleeps(target: Target, deadline: Deadline) -> Finding:
    time.sleep((2 - int(target.host.name.split("-")[1]) % 3) * 0.05)
    return Finding(Status.PASS if target.host.name != "host-4" else Status.FAIL, "done", {}, "fix it")


@pytest.fixture
def sleeping_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    probes = {"sleeps": Probe(kind="sleeps", plan=lambda host, profile: [], run=_sleeps)}
    monkeypatch.setattr("preflight.runner.registry", lambda: probes)


def _plan(name: str) -> HostPlan:
    host = Host.model_validate(
        {"name": name, "product": "pbxware", "address": "127.0.0.1"},
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )
    target = Target(check_id="sleeps", requirement="stand-in", host=host, profile=PROFILES["pbxware"])
    return HostPlan(host, (target,))


@pytest.mark.usefixtures("sleeping_probe")
def test_host_reports_come_in_plan_order_as_they_complete_reading_the_plan_a_batch_at_a_time() -> None:
    read: list[str] = []
    completed: list[str] = []
    lock = threading.Lock()

    def plans() -> Iterator[HostPlan]:
        for number in range(7):
            read.append(f"host-{number}")
            yield _plan(f"host-{number}")

    def host_done(report: HostReport) -> None:
        with lock:
            completed.append(report.name)

    run = PlanRun(plans(), timeout=5, concurrency=3, on_host_done=host_done, hosts_per_batch=3)
    out: list[str] = []
    read_when_first_came = -1
    for report in run:
        if not out:
            read_when_first_came = len(read)
        out.append(report.name)
    summary = run.summary()

    assert out == [f"host-{number}" for number in range(7)]
    assert completed != out  # they finished out of order, and still came out in order
    assert read_when_first_came == 3
    assert isinstance(summary, RunSummary)
    assert (summary.host_count, summary.ready_hosts, summary.not_ready_hosts) == (7, 6, 1)


@pytest.mark.usefixtures("sleeping_probe")
def test_a_run_not_yet_iterated_has_no_summary() -> None:
    run = PlanRun([_plan("host-0")], timeout=5, concurrency=1)

    with pytest.raises(RuntimeError, match="not over"):
        run.summary()
    assert [report.name for report in run] == ["host-0"]
    assert run.summary().host_count == 1


def test_the_spool_stays_out_of_a_run_that_wants_no_html_or_junit(tmp_path: Path) -> None:
    with RunReports(tmp_path / "report.json", None, None) as reports:
        reports.write(iter(_hosts(2)), lambda: _report(2).summary)
        reports.commit_json()
        with pytest.raises(RuntimeError, match="no spool"):
            reports.write_html(tmp_path / "report.html")
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]
    assert os.stat(tmp_path / "report.json").st_size > 0


def test_a_report_is_hashed_for_signing_without_loading_cryptography(tmp_path: Path) -> None:
    """Only --sign needs cryptography; the digest of the written bytes is the one signing.sign_digest signs."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from preflight.model import RunSummary\n"
        "from preflight.report_stream import RunReports\n"
        "summary = RunSummary('0.1.0', 'a', 'b', 'prober', (), 0, 0)\n"
        f"with RunReports(Path({str(tmp_path / 'report.json')!r}), None, None) as reports:\n"
        "    reports.write(iter(()), lambda: summary)\n"
        "    print(reports.commit_json().hex())\n"
        "print('cryptography' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    digest, loaded = completed.stdout.split()

    assert loaded == "False"
    # The control: the hash is signing's own, over the bytes in the file.
    from preflight import signing

    expected = signing.new_digest()
    expected.update((tmp_path / "report.json").read_bytes())
    assert digest == expected.hexdigest()
