"""Renderers are pure functions of a RunReport: the JSON contract, the HTML page, the terminal lines."""

from __future__ import annotations

import json

import jsonschema
import pytest

from preflight.model import CheckResult, HostReport, RunReport, Status
from preflight.render import html, terminal
from preflight.render import json as json_report
from tests.lab import SCHEMA

HOSTILE = '<script>alert("x")</script>'


def _check(
    check_id: str, status: Status, summary: str = "seen", evidence: dict[str, object] | None = None
) -> CheckResult:
    return CheckResult(
        id=check_id,
        requirement="a requirement",
        status=status,
        summary=summary,
        evidence=evidence or {},
        remediation="" if status is Status.PASS else "do this",
        duration_ms=1.5,
    )


def _report(*hosts: HostReport) -> RunReport:
    return RunReport(
        tool_version="0.1.0",
        started_at="2026-11-25T10:00:00Z",
        finished_at="2026-11-25T10:00:03Z",
        prober_hostname="prober",
        prober_addresses=("192.0.2.1",),
        hosts=hosts,
    )


READY = HostReport("ready-host", "pbxware", "pbx.example.com", "203.0.113.7", (_check("tcp/2020", Status.PASS),))
NOT_READY = HostReport(
    "broken-host",
    "serverware",
    "203.0.113.8",
    "203.0.113.8",
    (_check("tcp/2222", Status.FAIL, "TCP 2222 is closed"), _check("ssh-root/2222", Status.SKIPPED)),
)


def test_json_report_validates_against_the_schema_and_counts_hosts() -> None:
    document = json.loads(json_report.render(_report(READY, NOT_READY)))

    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["summary"] == {"hosts": 2, "ready": 1, "not_ready": 1}
    assert [host["ready"] for host in document["hosts"]] == [True, False]


@pytest.mark.parametrize("status", [Status.FAIL, Status.WARN, Status.ERROR, Status.SKIPPED])
def test_schema_rejects_a_non_pass_check_without_remediation(status: Status) -> None:
    document = json_report.to_document(_report(READY))
    document["hosts"][0]["checks"][0].update(status=status.value, remediation="")

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(document)


@pytest.mark.parametrize("status", [Status.WARN, Status.SKIPPED, Status.PASS])
def test_warn_and_skipped_leave_a_host_ready(status: Status) -> None:
    assert HostReport("h", "pbxware", "a", None, (_check("x", status),)).ready


@pytest.mark.parametrize("status", [Status.FAIL, Status.ERROR])
def test_fail_and_error_make_a_host_not_ready(status: Status) -> None:
    assert not HostReport("h", "pbxware", "a", None, (_check("x", status),)).ready


def test_html_escapes_hostile_names_summaries_and_evidence() -> None:
    hostile = HostReport(
        HOSTILE,
        "pbxware",
        HOSTILE,
        None,
        (_check("ssh-root/2020", Status.FAIL, HOSTILE, {"banner": HOSTILE, "subject": [HOSTILE]}),),
    )

    page = html.render(_report(hostile))

    assert "<script" not in page
    assert "&lt;script&gt;" in page


def test_html_is_self_contained() -> None:
    page = html.render(_report(READY, NOT_READY))

    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<style>" in page


def test_html_shows_the_verdict_and_what_to_fix_first() -> None:
    page = html.render(_report(READY, NOT_READY))

    assert "NOT READY" in page and "READY" in page
    assert "first: <code>tcp/2222</code>" in page and "<strong>What to do</strong>do this" in page


def test_terminal_lines_name_each_host_verdict_and_each_problem() -> None:
    text = terminal.render(_report(READY, NOT_READY))

    assert text.splitlines() == [
        "ready-host (pbxware, pbx.example.com): READY",
        "broken-host (serverware, 203.0.113.8): NOT READY",
        "  FAIL    tcp/2222: TCP 2222 is closed",
        "          fix: do this",
        "  SKIPPED ssh-root/2222: seen",
        "          fix: do this",
        "2 host(s): 1 ready, 1 not ready",
    ]
