"""Reports made from several vantages (schema version 2): the contract, `preflight render`, JUnit and the terminal."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from preflight.render import html, terminal
from tests.lab import SCHEMA
from tests.test_junit_and_render import junit_schema
from tests.vantage_reports import demo_report, only_checks, ssh_port, two_vantages

AGAIN = "the report was edited or damaged; run preflight check again"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return demo_report(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def v2(demo: dict[str, Any]) -> dict[str, Any]:
    return two_vantages(demo)


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def _render(tmp_path: Path, document: dict[str, Any], *outputs: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "report.json").write_text(json.dumps(document, indent=2))
    return subprocess.run(
        [sys.executable, "-m", "preflight", "render", "report.json", *outputs],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )  # fmt: skip


def test_a_report_from_one_vantage_stays_version_1_with_its_vantage_and_egress_address(demo: dict[str, Any]) -> None:
    document = copy.deepcopy(demo)
    document["prober"].update(vantage="eu", egress_address="198.51.100.20")

    _validator().validate(document)


def test_a_report_from_two_vantages_is_a_valid_version_2(v2: dict[str, Any]) -> None:
    _validator().validate(v2)
    assert v2["schema_version"] == "2"


def _error(document: dict[str, Any]) -> str:
    error = jsonschema.exceptions.best_match(_validator().iter_errors(document))
    assert error is not None, "the schema accepted it"
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    return f"{where.lstrip('.') or 'top level'}: {error.message}"


Mangle = Callable[[dict[str, Any]], Any]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d["hosts"][0].pop("vantages"), "hosts[0]: 'vantages' is a required property"),
        (lambda d: d["hosts"][0].pop("verdict"), "hosts[0]: 'verdict' is a required property"),
        (
            lambda d: d.update(prober={"hostname": "w", "addresses": []}),
            "top level: Additional properties are not allowed ('prober' was unexpected)",
        ),
        (lambda d: d["vantages"][0]["prober"].pop("vantage"), "vantages[0].prober: 'vantage' is a required property"),
        (
            lambda d: d["hosts"][0]["vantages"][1]["checks"][0].update(remediation="", status="fail"),
            "hosts[0].vantages[1].checks[0].remediation: '' should be non-empty",
        ),
        (
            lambda d: d["hosts"][0]["vantages"][0].update(checks="none"),
            "hosts[0].vantages[0].checks: 'none' is not of type 'array'",
        ),
        (lambda d: d.update(vantages=d["vantages"][:1]), "vantages: [{'name': 'eu'"),
        (lambda d: d.update(schema_version="3"), "schema_version: '3' is not one of ['1', '2']"),
    ],
)
def test_schema_refuses_a_broken_version_2_report(v2: dict[str, Any], mangle: Mangle, message: str) -> None:
    mangle(v2)
    assert _error(v2).startswith(message)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda d: d.update(vantages=[]),
            "top level: Additional properties are not allowed ('vantages' was unexpected)",
        ),
        (
            lambda d: d["hosts"][0].update(verdict="ready"),
            "hosts[0]: Additional properties are not allowed ('verdict' was unexpected)",
        ),
        (lambda d: d["prober"].update(vantage=""), "prober.vantage: '' should be non-empty"),
        (
            lambda d: d["prober"].update(region="eu"),
            "prober: Additional properties are not allowed ('region' was unexpected)",
        ),
    ],
)
def test_schema_refuses_a_version_1_report_with_a_version_2_field(
    demo: dict[str, Any], mangle: Mangle, message: str
) -> None:
    document = copy.deepcopy(demo)
    mangle(document)
    assert _error(document) == message


def test_render_writes_html_and_junit_of_a_version_2_report(tmp_path: Path, v2: dict[str, Any]) -> None:
    completed = _render(tmp_path, v2, "--html", "again.html", "--junit", "again.xml")

    assert completed.returncode == 0, completed.stderr
    page = (tmp_path / "again.html").read_text()
    assert page == html.render_document(v2)
    port = ssh_port(v2["hosts"][0]["vantages"][0])
    assert f"ready from eu; NOT ready from us: tcp/{port} filtered" in " ".join(page.split()).replace("</span>", "")
    assert '<table class="matrix">' in page and "filtered/no-response" in page and "open/syn-ack" in page
    assert "<script" not in page

    text = (tmp_path / "again.xml").read_text()
    junit_schema().validate(text)
    root = ET.fromstring(text)  # noqa: S314 - our own output
    suite = root.find("testsuite[@name='demo-pbx']")
    assert suite is not None
    names = [case.get("name") for case in suite.findall("testcase")]
    checks = [check["id"] for check in v2["hosts"][0]["vantages"][0]["checks"]]
    assert names == [f"eu/{c}" for c in checks] + [f"us/{c}" for c in checks]
    failed = [case.get("name") for case in suite.findall("testcase") if case.find("failure") is not None]
    assert failed == [f"us/tcp/{port}"]
    assert suite.get("skipped") == "2" and suite.get("tests") == str(2 * len(checks))
    verdict = suite.find("properties/property[@name='verdict']")
    assert verdict is not None and verdict.get("value") == v2["hosts"][0]["verdict"]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda d: d["hosts"][0]["vantages"][1].update(ready=True),
            "hosts[0].vantages[1].ready: says true but tcp/{port} is fail",
        ),
        (lambda d: d["hosts"][0].update(ready=True), "hosts[0].ready: says true but it is not ready from us"),
        (
            lambda d: d["hosts"][0].update(verdict="ready from eu, us"),
            'hosts[0].verdict: says "ready from eu, us" but it is not ready from us',
        ),
        (
            lambda d: d["summary"].update(ready=1, not_ready=0),
            "summary.ready: says 1 but the hosts' checks make it 0 (0 of 1 host(s) ready)",
        ),
        (
            lambda d: d["vantages"][1]["summary"].update(ready=1, not_ready=0),
            "vantages[1].summary.ready: says 1 but the hosts' checks make it 0 (0 of 1 host(s) ready)",
        ),
        (
            lambda d: d["hosts"][0]["vantages"].reverse(),
            "hosts[0].vantages: lists us, eu but the report was made from eu, us",
        ),
    ],
)
def test_render_refuses_a_version_2_report_whose_verdicts_disagree_with_its_checks(
    tmp_path: Path, demo: dict[str, Any], mangle: Mangle, message: str
) -> None:
    document = two_vantages({**demo, "hosts": demo["hosts"][:1]})
    port = ssh_port(document["hosts"][0]["vantages"][0])
    mangle(document)

    completed = _render(tmp_path, document, "--html", "out.html")

    assert completed.returncode == 2
    assert completed.stderr == f"preflight: error: report.json: {message.format(port=port)}; {AGAIN}\n"
    assert not (tmp_path / "out.html").exists()


def test_terminal_prints_verdict_matrix_and_fixes_within_80_columns(v2: dict[str, Any]) -> None:
    port = ssh_port(v2["hosts"][0]["vantages"][0])

    lines = terminal.document_lines(v2)

    start = lines.index("demo-pbx (pbxware, 127.0.0.1): NOT READY")
    assert lines[start + 1] == f"  ready from eu; NOT ready from us: tcp/{port} filtered"
    matrix = lines[lines.index("  where the vantages disagree:") + 1 :]
    assert matrix[0].split() == ["check", "eu", "us"]
    assert matrix[2].split() == [f"tcp/{port}", "pass", "open/syn-ack", "FAIL", "filtered/no-response"]
    fixes = lines.index("  from us, what to fix, in this order:")
    assert lines[fixes + 1].split()[:2] == ["FAIL", f"tcp/{port}:"]
    assert f"(blocks service/{port}, ssh-root/{port})" in lines[fixes + 1]
    assert lines[fixes + 2].strip().startswith(f"fix: Allow TCP {port} from 198.51.100.20")
    assert lines[-1] == "2 host(s): 0 ready from every vantage (eu, us), 2 not ready"
    fix_lines = {fixes + 1, fixes + 2}
    # The fixes are free text, as in a version 1 run; every line preflight lays out fits 80 columns.
    assert [line for n, line in enumerate(lines) if len(line) > 80 and not line.startswith("  FAIL") and
            not line.lstrip().startswith("fix:") and n not in fix_lines] == []  # fmt: skip


def test_terminal_matrix_folds_into_a_narrow_width(v2: dict[str, Any]) -> None:
    assert all(len(line) <= 40 for line in terminal.matrix_lines(v2["hosts"][0], 40))


def test_a_host_ready_from_every_vantage_has_no_matrix(demo: dict[str, Any]) -> None:
    from preflight import vantages

    eu = only_checks(demo)
    document = vantages.combine([("eu", eu), ("us", eu)])
    host = document["hosts"][0]

    assert (host["ready"], host["verdict"], vantages.differing_checks(host)) == (True, "ready from eu, us", [])
    assert "where the vantages disagree" not in terminal.render_document(document)
    assert "Every vantage saw the same" in html.render_document(document)


HOSTILE_VANTAGE = '<img src=x onerror=alert("vantage")>'
HOSTILE_HOST = '<script>alert("host")</script>'


def hostile_v2(demo: dict[str, Any]) -> dict[str, Any]:
    """A version 2 report whose vantage and host names try to break out of the page."""
    from preflight import vantages
    from tests.vantage_reports import filtered

    eu = only_checks({**demo, "hosts": demo["hosts"][:1]})
    eu["hosts"][0]["name"] = HOSTILE_HOST
    return vantages.combine([("eu", eu), (HOSTILE_VANTAGE, filtered(eu, HOSTILE_HOST))])


def test_hostile_vantage_and_host_names_are_escaped_in_html_and_junit(demo: dict[str, Any]) -> None:
    from preflight.render import junit

    document = hostile_v2(demo)
    page = html.render_document(document)

    assert HOSTILE_VANTAGE not in page and HOSTILE_HOST not in page
    assert "&lt;img src=x onerror=alert(&#34;vantage&#34;)&gt;" in page
    root = ET.fromstring(junit.render_document(document))  # noqa: S314 - our own output
    assert root.find("testsuite").get("name") == HOSTILE_HOST  # type: ignore[union-attr]
    assert any(case.get("name", "").startswith(HOSTILE_VANTAGE + "/") for case in root.iter("testcase"))
