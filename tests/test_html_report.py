"""The HTML report leads with what to fix: failing hosts first, each problem with its fix in the order to do it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from preflight.model import CheckResult, HostReport, RunReport, Status
from preflight.render import html
from tests.lab import write_inventory

CLOSED_FIX = "Forward TCP 443 on your router."


def _check(
    check_id: str,
    status: Status,
    summary: str,
    evidence: dict[str, object] | None = None,
    remediation: str = "",
    port: int | None = None,
) -> CheckResult:
    return CheckResult(check_id, f"requirement of {check_id}", status, summary, evidence or {}, remediation, 1.0, port,
                       "Web GUI (HTTPS)" if port == 443 else "")  # fmt: skip


def _report(*hosts: HostReport) -> RunReport:
    return RunReport("0.1.0", "2026-11-25T10:00:00Z", "2026-11-25T10:00:03Z", "prober", ("192.0.2.1",), hosts)


READY = HostReport("ready-host", "pbxware", "203.0.113.7", "203.0.113.7", (_check("tcp/443", Status.PASS, "open"),))
BROKEN = HostReport(
    "broken-host",
    "pbxware",
    "203.0.113.8",
    "203.0.113.8",
    (
        _check("public-ip", Status.PASS, "public", {"resolved": ["203.0.113.8"]}),
        _check("vantage", Status.WARN, "inside", {"signs": ["own-address"]}, "Run from outside."),
        _check("tcp/443", Status.FAIL, "TCP 443 is closed", {"state": "closed", "icmp": {"type": 3, "code": 13}},
               CLOSED_FIX, 443),
        _check("tcp/2020", Status.PASS, "TCP 2020 is open", {"state": "open"}, port=2020),
        _check("service/443", Status.SKIPPED, "not attempted: tcp/443 is closed", {"needs": "tcp/443"},
               "Fix tcp/443 first.", 443),
        _check("ssh-root/2020", Status.FAIL, "root password refused", {"outcome": "password-refused"},
               "Check the root password.", 2020),
        _check("gui-login/443", Status.SKIPPED, "not attempted: tcp/443 is closed", {"needs": "service/443"},
               "Fix tcp/443 first.", 443),
    ),
)  # fmt: skip


class _Outline(HTMLParser):
    """The page's text grouped by the elements the tests ask about."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.hosts: list[str] = []
        self.steps: list[str] = []
        self.blocked: list[str] = []
        self.in_passed = 0
        self.passed_ids: list[str] = []
        self.headline = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        self.stack.append((tag, classes))
        if tag == "details" and "passed" in classes.split():
            self.in_passed += 1

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            open_tag, classes = self.stack.pop()
            if open_tag == "details" and "passed" in classes.split():
                self.in_passed -= 1
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.stack or not data.strip():
            return
        tags = [classes.split() for _, classes in self.stack]
        if tags[-1] and "headline" in tags[-1]:
            self.headline = data.strip()
        if self.stack[-1][0] == "h2":
            self.hosts.append(data.strip().rstrip(":"))
        if self.stack[-1][0] == "code":
            if any("blocked" in c for c in tags):
                self.blocked.append(data)
            elif self.in_passed and any("check-head" in c for c in tags):
                self.passed_ids.append(data)
            elif any("check-head" in c for c in tags) and any("fixes" in c for c in tags):
                self.steps.append(data)


def _outline(page: str) -> _Outline:
    outline = _Outline()
    outline.feed(page)
    return outline


def test_hosts_that_are_not_ready_come_first() -> None:
    outline = _outline(html.render(_report(READY, BROKEN)))

    assert outline.hosts == ["ready-host", "broken-host"][::-1]


def test_fixes_come_in_order_with_what_each_blocks_folded_under_it() -> None:
    outline = _outline(html.render(_report(BROKEN)))

    assert outline.steps == ["tcp/443", "ssh-root/2020"]
    assert outline.blocked == ["service/443", "gui-login/443"]


def test_passes_are_folded_into_a_details_block() -> None:
    outline = _outline(html.render(_report(BROKEN)))

    assert outline.passed_ids == ["public-ip", "tcp/2020"]


def test_the_headline_verdict_is_the_run_verdict() -> None:
    assert _outline(html.render(_report(READY, BROKEN))).headline == "NOT READY"
    assert _outline(html.render(_report(READY))).headline == "READY"


def test_evidence_is_a_nested_list_of_keys_never_json() -> None:
    page = html.render(_report(BROKEN))

    assert "{&#34;" not in page and '{"' not in page and "[&#34;" not in page
    assert re.search(r"<dt>icmp</dt><dd><dl class=\"kv\"><div class=\"pair\"><dt>type</dt><dd><code>3</code>", page)
    assert "<dt>resolved</dt><dd><code>203.0.113.8</code></dd>" in page


def test_each_fix_is_shown_once_and_skipped_checks_only_point_to_it() -> None:
    page = html.render(_report(BROKEN))

    assert page.count(CLOSED_FIX) == 1
    assert "gui-login/443</code>: not attempted: tcp/443 is closed. Fix tcp/443 first." in page


def _run(folder: Path, *arguments: str) -> dict[str, object]:
    subprocess.run(
        [sys.executable, "-m", "preflight", *arguments], cwd=folder, capture_output=True, text=True, timeout=120
    )
    report: dict[str, object] = json.loads(next(folder.glob("*.json")).read_text())
    return report


def _texts(document: object) -> list[str]:
    if isinstance(document, dict):
        return [text for value in document.values() for text in _texts(value)]
    if isinstance(document, list):
        return [text for value in document for text in _texts(value)]
    return [document] if isinstance(document, str) else []


NESTED_PARENTHESES = re.compile(r"\([^()]*\([^()]*\)[^()]*\)")


def test_demo_and_closed_port_reports_name_the_real_address_and_nest_no_parentheses(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    demo.mkdir()
    closed = tmp_path / "closed"
    closed.mkdir()
    write_inventory(
        closed, "hosts:\n  - {name: shut, product: serverware, address: 127.0.0.1, require_public_ip: false}\n"
    )

    texts = [
        *_texts(_run(demo, "demo", "--out", str(demo))),
        *_texts(_run(closed, "check", "inventory.yaml", "--only", "tcp,service,gui-login", "--json", "r.json")),
    ]

    assert not [text for text in texts if "<address>" in text]
    assert not [text for text in texts if NESTED_PARENTHESES.search(text)]
    gui_fixes = [text for text in texts if text.startswith("The Web GUI on TCP") and "refused the login" in text]
    assert gui_fixes and all(re.search(r"at https://127\.0\.0\.1:\d+/ to confirm", fix) for fix in gui_fixes)
    assert "Fix tcp/443 first." in texts
