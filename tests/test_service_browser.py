"""`preflight serve` in headless Chromium, as a customer and a support engineer use it, against a lab target.

One service runs for the module, started as a real process with the lab target's address allowed. Every page the
browser gets is kept, so the last test can grep them (and the service's debug log, and its database with its WAL)
for every password typed. Screenshots go to test-artifacts/service-*.png.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from preflight.resolution import source_address
from tests.browser import ARTIFACTS, launched_chromium
from tests.lab import LabTarget, new_secret
from tests.service_process import ENGINEER_PASSWORD, ServiceProcess, running_service

# Bounded waits (milliseconds, as Playwright counts): a lab check takes a few seconds; these only bound a hang.
VERDICT_WAIT_MS = 120_000
STEP_WAIT_MS = 15_000
HOSTILE_TICKET = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE_ADDRESS = '"><script>alert(3)</script><svg onload=alert(4)>'
HOSTILE_SUMMARY = "</td></tr><img src=x onerror=alert(5)><script>alert(6)</script>"
VERDICT = "h1.verdict.ready, h1.verdict.not-ready"


@dataclass
class Served:
    """The module's service, its lab target, and everything the browser was handed (for the secrets grep)."""

    process: ServiceProcess
    target: LabTarget
    pages: list[str] = field(default_factory=list)
    passwords: set[str] = field(default_factory=set)


@dataclass
class Visit:
    """One browser context's record: every request, console message, page error, dialog and document answer."""

    context: Any
    page: Any
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    documents: list[Any] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, pbx_target: LabTarget) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("service")
    # Every test runs real checks of the one lab target from one client: the default hourly limits would refuse.
    args = ["--allow-targets", f"{pbx_target.ip}/32", "--limit-per-client", "100", "--limit-per-target", "100"]
    with running_service(state, args) as process:
        yield Served(process, pbx_target, passwords={pbx_target.gui_password, pbx_target.root_password,
                                                     ENGINEER_PASSWORD})


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


@contextmanager
def visit(browser: Any, served: Served, *, javascript: bool = True, width: int = 1280) -> Iterator[Visit]:
    """A fresh browser context (no cookies) that records what happens; every page's HTML is kept for the grep."""
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900})
    page = context.new_page()
    seen = Visit(context, page)
    context.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", lambda message: seen.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    page.on("framenavigated", lambda frame: seen.navigations.append(frame.url) if frame == page.main_frame else None)

    def answered(response: Any) -> None:
        if response.request.resource_type == "document":
            seen.documents.append(response)
            if not 300 <= response.status < 400:
                served.pages.append(response.text())  # each page's bytes as sent, beside the DOMs kept later

    page.on("response", answered)

    def refuse(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    try:
        yield seen
    finally:
        context.close()


def keep(served: Served, seen: Visit) -> str:
    """The page's HTML now, kept for the secrets grep."""
    html: str = seen.page.content()
    served.pages.append(html)
    return html


def fill_intake(seen: Visit, target: LabTarget, *, ticket: str, address: str = "", product: str = "pbxware",
                contact: str = "admin@example.com", gui_password: str = "", root_password: str = "") -> None:
    page = seen.page
    page.select_option("#product", product)
    page.fill("#address", address or target.ip)
    page.fill("#gui_username", target.gui_username)
    page.fill("#gui_password", gui_password or target.gui_password)
    page.fill("#root_password", root_password or target.root_password)
    page.fill("#ticket", ticket)
    page.fill("#contact", contact)


def submit_intake(seen: Visit) -> Any:
    """Press the form's button; the answer to the POST (before any redirect is followed)."""
    with seen.page.expect_response(lambda r: r.request.method == "POST") as answer:
        seen.page.click("button.primary")
    seen.page.wait_for_load_state("load")
    return answer.value


def check_id_of(url: str) -> str:
    found = re.search(r"/checks/([A-Za-z0-9_-]+)$", url)
    assert found, f"not a check page: {url}"
    return found.group(1)


def shoot(seen: Visit, name: str, width: int) -> tuple[int, int]:
    """A full-page screenshot at `width`; returns (scrollWidth, innerWidth) there."""
    seen.page.set_viewport_size({"width": width, "height": 900})
    seen.page.wait_for_timeout(100)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen.page.screenshot(path=str(ARTIFACTS / f"service-{name}-{width}px.png"), full_page=True)
    widths: list[int] = seen.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return widths[0], widths[1]


def assert_clean(seen: Visit, served: Served, answered: tuple[int, ...] = (), elsewhere: str = "") -> None:
    """Nothing but the service was asked for; no console message (a CSP violation is one), no error, no dialog.

    Chromium logs every page that comes with an error status; those the test asked for (`answered`) are expected.
    """
    origins = (served.process.url + "/", *([elsewhere + "/"] if elsewhere else []))
    assert [url for url in seen.requests if not url.startswith(origins)] == []
    expected = {f"Failed to load resource: the server responded with a status of {status} " for status in answered}
    console = [(kind, text) for kind, text in seen.console if not any(text.startswith(e) for e in expected)]
    assert (console, seen.page_errors, seen.dialogs) == ([], [], [])
    assert seen.documents, "no page was loaded"
    for response in seen.documents:
        headers = response.all_headers()
        csp = headers.get("content-security-policy", "")
        directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
        script = directives.get("script-src", directives.get("default-src"))
        assert script is not None and "'unsafe-inline'" not in script, (response.url, csp)
        assert directives.get("frame-ancestors") == ["'none'"], (response.url, csp)
        assert headers.get("x-content-type-options") == "nosniff", response.url


def login(seen: Visit, served: Served, password: str = ENGINEER_PASSWORD) -> Any:
    seen.page.goto(served.process.url + "/support/login")
    seen.page.fill("#name", "alice")
    seen.page.fill("#password", password)
    with seen.page.expect_response(lambda r: r.request.method == "POST") as answer:
        seen.page.click("button.primary")
    seen.page.wait_for_load_state("load")
    keep(served, seen)
    return answer.value


def run_form_check(browser: Any, served: Served, ticket: str) -> str:
    """A check submitted with the intake form, run to its end; its id."""
    with visit(browser, served) as seen:
        seen.page.goto(served.process.url + "/")
        fill_intake(seen, served.target, ticket=ticket)
        assert submit_intake(seen).status == 303
        check_id = check_id_of(seen.page.url)
        keep(served, seen)
    served.process.wait_done(check_id)
    return check_id


def test_customer_submits_the_form_and_gets_a_live_page_then_a_signed_ready_verdict(
    browser: Any, served: Served, tmp_path: Path
) -> None:
    service, target = served.process, served.target
    with visit(browser, served) as seen:
        page = seen.page
        page.goto(service.url + "/")
        keep(served, seen)
        # Chromium takes a Secure cookie from http://127.0.0.1 (a secure context), so no --insecure-cookies.
        cookies = {cookie["name"]: cookie for cookie in seen.context.cookies()}
        session = cookies["preflight_session"]
        assert (session["secure"], session["httpOnly"], session["sameSite"]) == (True, True, "Lax")
        shoot(seen, "intake", 1280)

        # The lab check ends in about a second, often before check.js first asks: its first answer is held back
        # as a slower host's would be (running, one more result, and that one's summary hostile), so the test
        # sees rows inserted live; every later answer is the service's own.
        polls: list[int] = []

        def first_answer_running(route: Any) -> None:
            answer = route.fetch()
            polls.append(answer.status)
            body = answer.json()
            if len(polls) == 1:
                shown = page.evaluate("document.querySelectorAll('#results tr').length")
                # check.js asks only for the results after the rows it shows (?since=N): one more, hostile.
                assert body["results_since"] == shown
                body = {**body, "state": "running", "report": None,
                        "progress": {"done": shown + 1, "total": body["progress"]["total"]},
                        "results": [{"host": target.ip, "id": "tcp/80", "status": "pass", "summary": HOSTILE_SUMMARY}]}
            route.fulfill(response=answer, body=json.dumps(body))

        page.route(re.compile(r".*/api/v1/checks/[A-Za-z0-9_-]+\?since=\d+$"), first_answer_running)
        fill_intake(seen, target, ticket="T-1001")
        assert submit_intake(seen).status == 303
        check_id = check_id_of(page.url)
        keep(served, seen)
        assert page.locator("h1.verdict.running").count() == 1, "the check ended before its page first showed"
        rows_at_start = page.locator("#results tr").count()
        total = int(page.inner_text("#progress").split(" of ")[1])

        page.wait_for_function(
            "rows => document.querySelectorAll('#results tr').length === rows"
            " && document.querySelector('h1.verdict.running') !== null", arg=rows_at_start + 1, timeout=STEP_WAIT_MS)
        assert page.inner_text("#progress") == f"{rows_at_start + 1} of {total}"
        assert page.locator("#results tr").last.inner_text().endswith(HOSTILE_SUMMARY)
        assert page.locator("#results img, #results script").count() == 0
        landed = len(seen.navigations)

        page.wait_for_selector(VERDICT, timeout=VERDICT_WAIT_MS)
        html = keep(served, seen)
        assert len(seen.navigations) == landed + 1, "check.js reloads the page once, at the end"
        assert page.inner_text("h1.verdict") == "READY: support can reach this system", page.inner_text("main")
        assert f"checked from {source_address(target.ip)}" in page.inner_text("p.meta")
        assert page.locator("#results tr").count() == total
        assert HOSTILE_SUMMARY not in html, "the held-back answer was only ever shown, never stored"
        for width in (1280, 390):
            scroll_width, inner_width = shoot(seen, "check", width)
            assert scroll_width <= inner_width == width

        links = {page.inner_text(f"a[href='{href}']"): href for href in
                 page.eval_on_selector_all("ul.downloads a", "links => links.map(a => a.getAttribute('href'))")}
        assert sorted(links.values()) == sorted([f"/checks/{check_id}/report.html", f"/checks/{check_id}/report.json",
                                                  f"/checks/{check_id}/report.json.sig", "/api/v1/signing-key"])
        files = {}
        for href in links.values():
            answer = seen.context.request.get(service.url + href)
            assert answer.status == 200, href
            files[href.rsplit("/", 1)[-1]] = answer.body()
        (tmp_path / "report.json").write_bytes(files["report.json"])
        (tmp_path / "report.json.sig").write_bytes(files["report.json.sig"])
        (tmp_path / "service.pub").write_bytes(files["signing-key"])
        assert json.loads(files["report.json"])["hosts"][0]["ready"] is True
        verified = subprocess.run(
            [sys.executable, "-m", "preflight", "verify", str(tmp_path / "report.json"),
             "--signature", str(tmp_path / "report.json.sig"), "--key", str(tmp_path / "service.pub")],
            capture_output=True, text=True, timeout=60, check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr

        page.click("a[href$='/report.html']")
        page.wait_for_load_state("load")
        keep(served, seen)
        assert "READY" in page.inner_text("body")
        assert page.evaluate("document.scripts.length") == 0
        assert_clean(seen, served)


def test_without_javascript_the_check_page_refreshes_itself_until_the_verdict(browser: Any, served: Served) -> None:
    with visit(browser, served, javascript=False) as seen:
        page = seen.page
        page.goto(served.process.url + "/")
        fill_intake(seen, served.target, ticket="T-1002")
        assert submit_intake(seen).status == 303
        check_id_of(page.url)
        html = keep(served, seen)
        assert page.locator("h1.verdict.running").count() == 1, "the check ended before its page first showed"
        assert re.search(r'<noscript><meta http-equiv="refresh" content="\d+"></noscript>', html)
        landed = len(seen.navigations)

        page.wait_for_selector(VERDICT, timeout=VERDICT_WAIT_MS)
        keep(served, seen)
        assert len(seen.navigations) > landed, "the page refreshed itself"
        assert page.inner_text("h1.verdict") == "READY: support can reach this system"
        assert page.locator("ul.downloads a").count() == 4
        assert "http-equiv" not in page.content(), "a finished check stops refreshing"
        assert_clean(seen, served)


@pytest.mark.parametrize(
    ("case", "address", "ticket", "contact", "errors"),
    [
        ("empty-address", "", "T-" + "9" * 199, "not an e-mail", {
            "address": "Enter the public IP address or DNS name support connects to.",
            "ticket": "At most 200 characters.",
            "contact": "Enter an e-mail address such as admin@example.com, or leave it empty.",
        }),
        ("private-address", "10.0.0.1", "T-1003", "admin@example.com", {"address": "10.0.0.1"}),
    ],
)
def test_bad_input_comes_back_with_each_message_beside_its_field_and_never_the_passwords(
    browser: Any, served: Served, case: str, address: str, ticket: str, contact: str, errors: dict[str, str]
) -> None:
    gui_password, root_password = new_secret("typed-gui"), new_secret("typed-root")
    served.passwords |= {gui_password, root_password}
    with visit(browser, served, width=390) as seen:
        page = seen.page
        page.goto(served.process.url + "/")
        fill_intake(seen, served.target, ticket=ticket, address=address or " ", product="serverware", contact=contact,
                    gui_password=gui_password, root_password=root_password)
        page.fill("#root_password_2222", root_password + "-2222")
        answer = submit_intake(seen)
        html = keep(served, seen)

        assert answer.status == 422
        assert page.url == served.process.url + "/"
        for name, message in errors.items():
            # Beside its field: the field, its one-line help, then its message.
            beside = page.evaluate(f"document.getElementById('{name}-help').nextElementSibling.id")
            assert beside == f"{name}-error"
            assert message in page.inner_text(f"#{name}-error")
            assert page.get_attribute(f"#{name}", "aria-invalid") == "true"
        others = {"gui_username", "ticket", "contact", "address", "product"} - set(errors)
        kept = {"gui_username": served.target.gui_username, "ticket": ticket, "contact": contact,
                "address": address, "product": "serverware"}
        assert {name: page.input_value(f"#{name}") for name in others} == {name: kept[name] for name in others}
        assert [page.input_value(f"#{name}") for name in ("gui_password", "root_password", "root_password_2222")] \
            == ["", "", ""]
        for secret in (gui_password, root_password, root_password + "-2222"):
            assert secret not in html and secret not in answer.text()
        scroll_width, inner_width = shoot(seen, f"intake-{case}", 390)
        assert scroll_width <= inner_width
        assert_clean(seen, served, (422,))


def test_hostile_text_is_refused_as_an_address_and_shown_literally_as_a_ticket(browser: Any, served: Served) -> None:
    service = served.process
    with visit(browser, served) as seen:
        page = seen.page
        page.goto(service.url + "/")
        fill_intake(seen, served.target, ticket=HOSTILE_TICKET, address=HOSTILE_ADDRESS)
        assert submit_intake(seen).status == 422
        keep(served, seen)
        assert page.input_value("#address") == HOSTILE_ADDRESS
        assert page.inner_text("#address-error")
        assert page.evaluate("document.scripts.length") == 0

        page.fill("#address", served.target.ip)
        page.fill("#gui_password", served.target.gui_password)
        page.fill("#root_password", served.target.root_password)
        assert submit_intake(seen).status == 303
        check_id = check_id_of(page.url)
        page.wait_for_selector(VERDICT, timeout=VERDICT_WAIT_MS)
        keep(served, seen)
        assert page.inner_text("p.meta strong") == HOSTILE_TICKET
        assert HOSTILE_TICKET in page.title()

        login(seen, served)
        page.goto(service.url + "/support")
        keep(served, seen)
        row = page.locator("tbody tr", has=page.locator(f"a[href='/checks/{check_id}']"))
        assert row.locator("td").nth(1).inner_text() == HOSTILE_TICKET
        page.fill("#q", HOSTILE_ADDRESS)
        page.click("form.filter button")
        page.wait_for_load_state("load")
        keep(served, seen)
        assert page.input_value("#q") == HOSTILE_ADDRESS
        assert HOSTILE_ADDRESS in page.inner_text("tbody")

        for scope in ("main", "head"):
            # The page's own check.js is the only script any of these pages may hold.
            assert page.evaluate(f"[...document.querySelectorAll('{scope} script')].length") == 0
        assert page.locator("img, svg, [onerror], [onload]").count() == 0
        assert seen.dialogs == []
        assert_clean(seen, served, (422,))


_ATTACKER = """<!doctype html><title>win a prize</title>
<form method="post" action="{url}/">
<input name="csrf" value="{csrf}"><input name="product" value="pbxware"><input name="address" value="{ip}">
<input name="gui_username" value="admin"><input name="gui_password" value="x"><input name="root_password" value="x">
<input name="ticket" value="T-CSRF"><button id="go">go</button></form>"""


@pytest.mark.parametrize("csrf", ["", "wrong-token"])
def test_a_form_post_without_the_right_csrf_token_is_refused(browser: Any, served: Served, csrf: str) -> None:
    service = served.process
    with visit(browser, served) as seen:
        page = seen.page
        page.goto(service.url + "/")
        fill_intake(seen, served.target, ticket="T-1004")
        token = page.get_attribute("input[name=csrf]", "value")
        assert token

        # Another site's page, posting the intake form at the service in the customer's browser.
        attacker = "http://attacker.invalid"
        other = seen.context.new_page()
        other.route(attacker + "/**", lambda route: route.fulfill(
            content_type="text/html", body=_ATTACKER.format(url=service.url, csrf=csrf, ip=served.target.ip)))
        other.goto(attacker + "/")
        with other.expect_response(lambda r: r.request.method == "POST") as answer:
            other.click("#go")
        assert answer.value.status == 403
        other.close()

        # The same origin, with the customer's own cookie, but without the form's token.
        form = {"product": "pbxware", "address": served.target.ip, "gui_username": "admin", "gui_password": "x",
                "root_password": "x", "ticket": "T-CSRF", **({"csrf": csrf} if csrf else {})}
        forged = seen.context.request.post(service.url + "/", form=form, max_redirects=0)
        assert forged.status == 403
        assert "The form expired" in forged.text()

        # The control: the real form, with its token, is taken.
        assert submit_intake(seen).status == 303
        check_id = check_id_of(page.url)
        keep(served, seen)
        assert service.wait_done(check_id)["state"] == "done"
        assert_clean(seen, served, (403,), elsewhere=attacker)
    assert not any(row.startswith("T-CSRF") for row in _tickets(served))


def _tickets(served: Served) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{served.process.state / 'service.db'}")
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text("SELECT ticket FROM checks"))]
    finally:
        engine.dispose()


def test_engineer_signs_in_finds_opens_and_reruns_a_check_then_signs_out(browser: Any, served: Served) -> None:
    service, target = served.process, served.target
    tag = new_secret("ENG").replace("_", "-")
    check_id = run_form_check(browser, served, f"{tag}-form")
    other = service.post_check({"ticket": f"{tag}-api", "inventory": {"hosts": [
        {"name": "pbx", "product": "pbxware", "address": target.ip,
         "gui": {"username": target.gui_username, "password": target.gui_password},
         "ssh": {"root_password": target.root_password}}]}})
    assert other.status_code == 202, other.text
    service.wait_done(other.json()["id"])
    wrong = new_secret("wrong")
    served.passwords.add(wrong)

    with visit(browser, served) as seen:
        page = seen.page
        page.goto(service.url + "/support")
        assert page.url == service.url + "/support/login"
        shoot(seen, "login", 390)

        assert login(seen, served, wrong).status == 401
        assert "Wrong name or password." in page.inner_text("main")
        assert page.input_value("#password") == ""
        assert login(seen, served).status == 303
        assert page.url == service.url + "/support"

        page.fill("#q", f"{tag}-form")
        page.click("form.filter button")
        page.wait_for_load_state("load")
        keep(served, seen)
        rows = page.locator("tbody tr")
        assert rows.count() == 1
        cells = [rows.first.locator("td").nth(index).inner_text() for index in range(6)]
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        assert cells[0].startswith(today[:7])
        assert cells[1:] == [f"{tag}-form", target.ip, "pbxware", "READY", source_address(target.ip)]
        for width in (1280, 390):
            scroll_width, inner_width = shoot(seen, "support", width)
            assert scroll_width <= inner_width
        page.set_viewport_size({"width": 1280, "height": 900})

        page.goto(service.url + f"/support?q={target.ip}")
        keep(served, seen)
        tickets = page.locator("tbody tr td:nth-child(2)").all_inner_texts()
        assert {f"{tag}-form", f"{tag}-api"} <= set(tickets)
        page.goto(service.url + "/support?q=203.0.113.77")
        assert page.locator("tbody tr").count() == 1
        assert "No checks match" in page.inner_text("tbody")

        page.goto(service.url + f"/support?q={tag}-form")
        page.click("tbody tr a:text('Open')")
        page.wait_for_load_state("load")
        keep(served, seen)
        assert page.url == service.url + f"/checks/{check_id}"
        assert page.inner_text("h1.verdict") == "READY: support can reach this system"

        page.go_back()
        page.click("tbody tr a:text('Run again')")
        page.wait_for_load_state("load")
        keep(served, seen)
        assert page.url == service.url + f"/?again={check_id}"
        values = {name: page.input_value(f"#{name}") for name in
                  ("product", "address", "ticket", "gui_password", "root_password", "root_password_2222")}
        assert values == {"product": "pbxware", "address": target.ip, "ticket": f"{tag}-form",
                          "gui_password": "", "root_password": "", "root_password_2222": ""}

        page.click("button:text('Sign out')")
        page.wait_for_load_state("load")
        assert page.url == service.url + "/"
        page.goto(service.url + "/support")
        assert page.url == service.url + "/support/login"
        assert_clean(seen, served, (401,))


def test_no_password_typed_is_in_any_page_the_log_or_the_database(browser: Any, served: Served) -> None:
    # Runs last: the pages every test above kept, and one more check of its own so it proves something alone.
    run_form_check(browser, served, "T-1005")
    state = served.process.state
    stored = {path.name: path.read_bytes() for path in state.glob("service.db*")}
    assert {"service.db", "service.db-wal"} <= set(stored), sorted(stored)
    log = served.process.log()
    assert " DEBUG " in log
    assert len(served.pages) >= 3
    # Controls: the grep reads what is really there (the ticket is kept in the clear, as it should be).
    assert any("T-1005" in html for html in served.pages) and b"T-1005" in b"".join(stored.values())
    for secret in served.passwords:
        assert [i for i, html in enumerate(served.pages) if secret in html] == []
        assert secret not in log
        assert [name for name, data in stored.items() if secret.encode() in data] == []
