"""The HTML report in a real browser: nothing fetched, no console error, no script run, readable in print.

A screenshot of each page is kept in test-artifacts/ (PREFLIGHT_TEST_ARTIFACTS overrides the folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
        # Evidence is a list of keys and values, not JSON, so every hostile string shows exactly as it came.
        assert hostile in text


def test_a_real_report_loads_offline_with_no_console_error_and_prints(tmp_path: Path, pbx_target: LabTarget) -> None:
    run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target), lab_secrets(pbx_target))
    page_file = tmp_path / "report.html"

    with visit(page_file) as seen:
        verdict = seen.page.inner_text("ul.verdicts")
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


def _wide_report() -> RunReport:
    """A report full of long unbroken text: host names, fingerprints, URLs, banners, as real evidence has."""
    long_name = "pbx-" + "a" * 60 + ".customer-network.example.com"
    fingerprint = "SHA256:" + "Q" * 43
    checks = (
        CheckResult("public-ip", "r", Status.PASS, "public", {"resolved": ["203.0.113.9"]}, "", 1.0),
        CheckResult("tcp/443", "r", Status.FAIL, f"TCP 443 is filtered: no answer from {long_name}",
                    {"state": "filtered", "icmp": {"type": 3, "code": 13, "from": "2001:db8:ffff:ffff:ffff:ffff:ffff:1"}},
                    "Forward TCP 443 on your router or firewall to " + "https://" + long_name + "/admin/" + "x" * 80,
                    1.0, 443, "Web GUI (HTTPS)"),
        CheckResult("gui-login/443", "r", Status.SKIPPED, "not attempted: tcp/443 is filtered", {"needs": "tcp/443"},
                    "Fix tcp/443 first.", 1.0, 443, "Web GUI (HTTPS)"),
        CheckResult("ssh-root/2020", "r", Status.FAIL, "host key changed",
                    {"host_key_fingerprint": fingerprint, "known_hosts": "/home/" + "b" * 90 + "/known_hosts"},
                    f"Run ssh-keygen -R '[{long_name}]:2020' -f /home/{'b' * 90}/known_hosts and check again.",
                    1.0, 2020, "SSH and Setup Wizard (root)"),
    )  # fmt: skip
    ready = HostReport("ready-" + "r" * 70, "pbxware", "203.0.113.10", None, checks[:1])
    return RunReport(
        tool_version="0.1.0",
        started_at="2026-11-25T10:00:00Z",
        finished_at="2026-11-25T10:00:03Z",
        prober_hostname="prober-" + "p" * 70,
        prober_addresses=("192.0.2.1", "2001:db8::1"),
        hosts=(ready, HostReport(long_name, "serverware", long_name, "203.0.113.9", checks)),
        warnings=("inventory.yaml holds plaintext passwords " + "w" * 100,),
        inventory_sha256="0" * 64,
    )


# Each verdict and each fix: inside the viewport's width, and in a size a person reads.
_READABLE = """() => [...document.querySelectorAll('.headline, .verdict, .host-verdict, .fix, .summary, .blocked li')].map(e => {
    const box = e.getBoundingClientRect();
    return {kind: e.className || e.parentElement.className, text: e.innerText.slice(0, 40), left: box.left, right: box.right,
            size: parseFloat(getComputedStyle(e).fontSize), visible: box.width > 0 && box.height > 0};
})"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_report_fits_the_screen_without_scrolling_sideways(tmp_path: Path, width: int) -> None:
    page_file = tmp_path / "wide.html"
    page_file.write_text(html.render(_wide_report()))

    with visit(page_file) as seen:
        seen.page.set_viewport_size({"width": width, "height": 900})
        seen.page.wait_for_timeout(100)
        scroll_width, inner_width = seen.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        elements = seen.page.evaluate(_READABLE)
        headline_size = seen.page.evaluate("parseFloat(getComputedStyle(document.querySelector('.headline')).fontSize)")
        seen.page.screenshot(path=str(_artifact(f"report-{width}px.png")), full_page=True)

    assert scroll_width <= inner_width == width
    # Two fixes (tcp/443, ssh-root/2020), the skipped login under its cause, and each host's verdict twice.
    kinds = [e["kind"] for e in elements]
    assert (kinds.count("fix"), kinds.count("blocked")) == (2, 1)
    assert len([e for e in elements if "verdict" in e["kind"]]) == 4
    unreadable = [e for e in elements if not e["visible"] or e["left"] < 0 or e["right"] > width or e["size"] < 12]
    assert unreadable == []
    assert headline_size >= 32, "the headline verdict is large"
    assert seen.console == [] and seen.page_errors == []


@pytest.fixture(scope="module")
def demo_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.vantage_reports import demo_report

    return demo_report(tmp_path_factory.mktemp("demo"))


@pytest.mark.parametrize("width", [1280, 390])
def test_a_report_from_two_vantages_shows_the_matrix_and_fits_the_screen(
    tmp_path: Path, demo_document: dict[str, Any], width: int
) -> None:
    from tests.vantage_reports import ssh_port, two_vantages

    document = two_vantages(demo_document)
    port = ssh_port(document["hosts"][0]["vantages"][0])
    page_file = tmp_path / "vantages.html"
    page_file.write_text(html.render_document(document))

    with visit(page_file) as seen:
        seen.page.set_viewport_size({"width": width, "height": 900})
        seen.page.wait_for_timeout(100)
        scroll_width, inner_width = seen.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        matrix_right = seen.page.evaluate("document.querySelector('table.matrix').getBoundingClientRect().right")
        rows = seen.page.evaluate(
            "[...document.querySelectorAll('table.matrix tr')].map(r => [...r.cells].map(c => c.innerText.trim()))"
        )
        verdict = seen.page.inner_text(".vantage-verdict")
        verdict_size = seen.page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('.vantage-verdict')).fontSize)"
        )
        fixes = seen.page.inner_text(".not-ready-vantage")
        seen.page.screenshot(path=str(_artifact(f"report-vantages-{width}px.png")), full_page=True)

    assert scroll_width <= inner_width == width and matrix_right <= width
    assert verdict == f"ready from eu; NOT ready from us: tcp/{port} filtered"
    assert verdict_size >= 24, "the verdict line is large"
    assert rows[0] == ["Check", "eu", "us"]
    assert [cell.split() for cell in rows[1]] == [
        [f"tcp/{port}"],
        ["PASS", "open/syn-ack"],
        ["FAIL", "filtered/no-response"],
    ]
    assert fixes.startswith("From us: NOT READY. What to fix, in this order")
    assert f"Allow TCP {port} from 198.51.100.20" in fixes
    assert seen.requests == [page_file.resolve().as_uri()]
    assert seen.console == [] and seen.page_errors == []


def test_hostile_vantage_and_host_names_stay_text_in_a_browser(tmp_path: Path, demo_document: dict[str, Any]) -> None:
    from tests.test_report_v2 import HOSTILE_HOST, HOSTILE_VANTAGE, hostile_v2

    page_file = tmp_path / "hostile-vantages.html"
    page_file.write_text(html.render_document(hostile_v2(demo_document)))

    with visit(page_file) as seen:
        scripts = seen.page.evaluate("document.scripts.length")
        active = seen.page.evaluate("document.querySelectorAll('img, svg, iframe, [onerror], [onload]').length")
        text = seen.page.inner_text("body")

    assert (scripts, active, seen.dialogs, seen.page_errors) == (0, 0, [], [])
    assert HOSTILE_HOST in text and HOSTILE_VANTAGE in text
