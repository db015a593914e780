"""The HTML report in a real browser: nothing fetched, no console error, no script run, readable in print.

A screenshot of each page is kept in test-artifacts/ (PREFLIGHT_TEST_ARTIFACTS overrides the folder).
"""

from __future__ import annotations

from pathlib import Path

from preflight.model import CheckResult, HostReport, RunReport, Status
from preflight.render import html
from tests.browser import ARTIFACTS, visit
from tests.lab import LabTarget, lab_inventory, lab_secrets, run_preflight

# Each tries a different way out of the page: a tag, an attribute, a URL, a closed-off context.
HOSTILE = {
    "host": '<script>alert("host")</script>',
    "banner": 'SSH-2.0-<img src=x onerror=alert("banner")>',
    "subject": 'CN="><svg onload=alert("subject")>',
    "issuer": "CN=</code></dd><script>alert('issuer')</script>",
    "san": "javascript:alert('san')",
    "summary": "</td></tr></table><iframe src=https://example.invalid/></iframe>",
}


def _hostile_report() -> RunReport:
    certificate = {"subject": HOSTILE["subject"], "issuer": HOSTILE["issuer"], "san_dns": [HOSTILE["san"]]}
    checks = (
        CheckResult("service/2020", "r", Status.FAIL, HOSTILE["summary"], {"heard": HOSTILE["banner"]}, "fix", 1.0, 2020,
                    HOSTILE["banner"]),
        CheckResult("service/443", "r", Status.WARN, "expired", {"certificate": certificate}, HOSTILE["issuer"], 1.0, 443,
                    "Web GUI"),
        CheckResult("ssh-root/2020", "r", Status.PASS, "ok", {"banner": HOSTILE["banner"]}, "", 1.0, 2020, "SSH"),
    )  # fmt: skip
    return RunReport(
        tool_version="0.1.0",
        started_at="2026-11-25T10:00:00Z",
        finished_at="2026-11-25T10:00:03Z",
        prober_hostname=HOSTILE["host"],
        prober_addresses=("192.0.2.1",),
        hosts=(HostReport(HOSTILE["host"], "pbxware", HOSTILE["san"], None, checks),),
        warnings=(HOSTILE["summary"],),
        inventory_sha256="0" * 64,
    )


def test_hostile_names_banners_and_certificate_fields_stay_text(tmp_path: Path) -> None:
    page_file = tmp_path / "hostile.html"
    page_file.write_text(html.render(_hostile_report()))

    with visit(page_file) as seen:
        scripts = seen.page.evaluate("document.scripts.length")
        active = seen.page.evaluate("document.querySelectorAll('img, svg, iframe, [onerror], [onload]').length")
        text = seen.page.inner_text("body")
        seen.page.screenshot(path=str(_artifact("report-hostile.png")), full_page=True)

    assert (scripts, active, seen.dialogs, seen.page_errors) == (0, 0, [], [])
    assert seen.requests == [page_file.resolve().as_uri()]
    for hostile in HOSTILE.values():
        # Certificate fields sit inside JSON evidence, where quotes are escaped: compare without them.
        assert hostile.replace('"', "") in text.replace('\\"', "").replace('"', "")


def test_a_real_report_loads_offline_with_no_console_error_and_prints(tmp_path: Path, pbx_target: LabTarget) -> None:
    run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target), lab_secrets(pbx_target))
    page_file = tmp_path / "report.html"

    with visit(page_file) as seen:
        verdict = seen.page.inner_text("table.verdicts")
        seen.page.screenshot(path=str(_artifact("report.png")), full_page=True)
        seen.page.emulate_media(media="print")
        seen.page.screenshot(path=str(_artifact("report-print.png")), full_page=True)
        pdf = seen.page.pdf(format="A4")

    assert seen.requests == [page_file.resolve().as_uri()], "the report fetched something"
    assert seen.console == [] and seen.page_errors == []
    assert "READY" in verdict and "lab" in verdict
    assert pdf.startswith(b"%PDF")


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
