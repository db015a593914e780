"""Debian's headless Chromium, driven by Playwright, to look at an HTML report as a person's browser does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab import REPO
from tests.requirements import need_tool

# Without these, Chromium reaches out at start (updates, sync, field trials); this machine's network refuses it.
QUIET_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("PREFLIGHT_TEST_ARTIFACTS", REPO / "test-artifacts"))


@dataclass
class PageVisit:
    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page: Any = None


def chromium_path() -> str:
    return need_tool("chromium", "chromium")


@contextmanager
def visit(html_file: Path) -> Iterator[PageVisit]:
    """Open `html_file` in headless Chromium and record every request, console message, error and dialog."""
    from playwright.sync_api import sync_playwright

    seen = PageVisit()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=QUIET_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda request: seen.requests.append(request.url))
            page.on("console", lambda message: seen.console.append((message.type, message.text)))
            page.on("pageerror", lambda error: seen.page_errors.append(str(error)))

            def refuse(dialog: Any) -> None:
                seen.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", refuse)
            page.goto(html_file.resolve().as_uri(), wait_until="load")
            page.wait_for_timeout(300)
            seen.page = page
            yield seen
        finally:
            browser.close()


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, quiet (no calls home), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=QUIET_FLAGS)
        try:
            yield launched
        finally:
            launched.close()
