"""JUnit XML that CI servers accept (validated against Jenkins' junit-10.xsd), and `preflight render`."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from preflight.model import CheckResult, HostReport, RunReport, Status
from preflight.render import json as json_report
from preflight.render import junit
from tests.lab import REPO, LabTarget, lab_inventory, lab_secrets, run_preflight
from tests.requirements import need

JUNIT_XSD = REPO / ".cache" / "junit-10.xsd"


def junit_schema() -> xmlschema.XMLSchema:
    need(JUNIT_XSD.is_file(), f"{JUNIT_XSD} is missing: scripts/test.sh fetches it")
    return xmlschema.XMLSchema(JUNIT_XSD)


def _check(check_id: str, status: Status, summary: str) -> CheckResult:
    remediation = "" if status is Status.PASS else f"fix {check_id}"
    return CheckResult(check_id, "a requirement", status, summary, {"state": "x"}, remediation, 1234.5678, 2020, "SSH")


REPORT = RunReport(
    tool_version="0.1.0",
    started_at="2026-11-25T10:00:00Z",
    finished_at="2026-11-25T10:00:03Z",
    prober_hostname="prober",
    prober_addresses=("192.0.2.1",),
    hosts=(
        HostReport(
            "pbx-<1>",
            "pbxware",
            "203.0.113.7",
            "203.0.113.7",
            (
                _check("tcp/2020", Status.PASS, "open"),
                _check("public-ip", Status.WARN, "private & <odd>"),
                _check("ssh-root/2020", Status.FAIL, 'refused "root"'),
                _check("gui-login/443", Status.ERROR, "broke"),
                _check("service/2222", Status.SKIPPED, "not attempted"),
            ),
        ),
        HostReport("empty", "serverware", "203.0.113.8", None, ()),
    ),
)


def test_junit_validates_against_jenkins_schema_with_one_testcase_per_check_classed_by_host() -> None:
    text = junit.render(REPORT)

    junit_schema().validate(text)
    root = ET.fromstring(text)  # noqa: S314 - our own output
    assert {name: root.get(name) for name in ("tests", "failures", "errors")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
    }
    assert root.find("testsuite[@name='pbx-<1>']").get("skipped") == "1"  # type: ignore[union-attr]
    cases = root.findall("testsuite/testcase")
    assert [(case.get("classname"), case.get("name")) for case in cases] == [
        ("pbx-<1>", check_id)
        for check_id in ("tcp/2020", "public-ip", "ssh-root/2020", "gui-login/443", "service/2222")
    ]
    failure = cases[2].find("failure")
    assert failure is not None and failure.get("message") == 'refused "root"'
    assert "what to do: fix ssh-root/2020" in (failure.text or "")
    assert (cases[1].findtext("system-out") or "").startswith("WARNING: private & <odd>")
    assert cases[0].get("time") == "1.235"


def _preflight(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_render_rebuilds_the_same_html_and_junit_from_a_saved_report(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = run_preflight(
        tmp_path,
        lab_inventory(tmp_path, pbx_target),
        lab_secrets(pbx_target),
        ["--junit", str(tmp_path / "check.xml")],
    )
    junit_schema().validate(str(tmp_path / "check.xml"))

    completed = _preflight("render", "report.json", "--html", "again.html", "--junit", "again.xml", cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "again.html").read_text() == run.html
    assert (tmp_path / "again.xml").read_text() == (tmp_path / "check.xml").read_text()


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda doc: doc["hosts"][0]["checks"][1].update(remediation=""),
            "hosts[0].checks[1].remediation: '' should be non-empty",
        ),
        (lambda doc: doc.update(schema_version="9"), "schema_version: '9' is not one of ['1', '2']"),
        (lambda doc: doc["hosts"][0].pop("ready"), "hosts[0]: 'ready' is a required property"),
    ],
)
def test_render_refuses_a_report_that_breaks_the_schema_in_one_line(tmp_path: Path, mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(json_report.render(REPORT))
    mangle(document)
    (tmp_path / "bad.json").write_text(json.dumps(document))

    completed = _preflight("render", "bad.json", "--html", "out.html", cwd=tmp_path)

    assert completed.returncode == 2
    assert completed.stderr == f"preflight: error: bad.json: {message}\n"
    assert not (tmp_path / "out.html").exists()


def test_render_needs_an_output_and_a_readable_json_report(tmp_path: Path) -> None:
    (tmp_path / "notjson.json").write_text("{nope")

    assert _preflight("render", "notjson.json", cwd=tmp_path).stderr == (
        "preflight: error: render: say what to write: --html PATH, --junit PATH, or both\n"
    )
    completed = _preflight("render", "notjson.json", "--junit", "x.xml", cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.startswith("preflight: error: notjson.json: not a JSON report: ")


AGAIN = "the report was edited or damaged; run preflight check again"


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        pytest.param(
            lambda doc: doc["summary"].update(ready=2, not_ready=0),
            f"summary.ready: says 2 but the hosts' checks make it 1 (1 of 2 host(s) ready); {AGAIN}",
            id="summary-says-all-ready",
        ),
        pytest.param(
            lambda doc: doc["summary"].update(hosts=3),
            f"summary.hosts: says 3 but the hosts' checks make it 2 (1 of 2 host(s) ready); {AGAIN}",
            id="summary-counts-a-host-too-many",
        ),
        pytest.param(
            lambda doc: doc["hosts"][0].update(ready=True),
            f"hosts[0].ready: says true but ssh-root/2020 is fail; {AGAIN}",
            id="host-ready-above-a-failed-check",
        ),
        pytest.param(
            lambda doc: doc["hosts"][1].update(ready=False),
            f"hosts[1].ready: says false but no check failed; {AGAIN}",
            id="host-not-ready-without-a-failed-check",
        ),
    ],
)
def test_render_refuses_a_report_whose_verdicts_disagree_with_its_checks(
    tmp_path: Path,
    mangle,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    document = json.loads(json_report.render(REPORT))
    mangle(document)
    (tmp_path / "edited.json").write_text(json.dumps(document))

    completed = _preflight("render", "edited.json", "--html", "out.html", "--junit", "out.xml", cwd=tmp_path)

    assert completed.returncode == 2
    assert completed.stderr == f"preflight: error: edited.json: {message}\n"
    assert not (tmp_path / "out.html").exists() and not (tmp_path / "out.xml").exists()


def test_render_accepts_an_untouched_report(tmp_path: Path) -> None:
    (tmp_path / "saved.json").write_text(json_report.render(REPORT))

    completed = _preflight("render", "saved.json", "--html", "out.html", cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "out.html").read_text().rstrip().endswith("</html>")
