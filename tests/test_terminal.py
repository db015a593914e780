"""The terminal: live progress and a table on a TTY; plain lines without one, with NO_COLOR, or with --quiet."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab import write_inventory

INVENTORY = """\
hosts:
  - {name: loop-a, product: pbxware, address: 127.0.0.1, require_public_ip: false}
  - {name: loop-b, product: pbxware, address: 127.0.0.1}
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COMMAND = [sys.executable, "-m", "preflight", "check", "inventory.yaml", "--only", "public-ip"]


def _on_a_terminal(folder: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    """Run preflight with its stdout on a pseudo-terminal, as a person at a shell would; return what it drew."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*COMMAND, *extra],
        stdout=terminal,
        stderr=subprocess.STDOUT,
        cwd=folder,
        env={**os.environ, "COLUMNS": "160", "TERM": "xterm", **(env or {})},
    )
    os.close(terminal)
    drawn = b""
    give_up_at = time.monotonic() + 60
    while time.monotonic() < give_up_at:
        ready, _, _ = select.select([controller], [], [], 1)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    process.wait(timeout=30)
    os.close(controller)
    return drawn.decode(errors="replace")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_inventory(tmp_path, INVENTORY)
    return tmp_path


def test_a_terminal_gets_live_progress_then_a_summary_table(folder: Path) -> None:
    raw = _on_a_terminal(folder)
    drawn = ANSI.sub("", raw)

    assert "\x1b[" in raw, "a terminal gets colour"
    assert "checking" in drawn and "hosts, " in drawn

    assert "┃ Host" in drawn and "NOT READY" in drawn and "public-ip: not a public address" in drawn
    assert "2 host(s): 1 ready, 1 not ready" in drawn


def test_no_color_on_a_terminal_prints_plain_lines(folder: Path) -> None:
    drawn = _on_a_terminal(folder, env={"NO_COLOR": "1"})

    assert "┃" not in drawn and "\x1b[" not in drawn
    assert "loop-b (pbxware, 127.0.0.1): NOT READY" in drawn


def test_without_a_terminal_each_host_is_a_plain_line(folder: Path) -> None:
    completed = subprocess.run(COMMAND, capture_output=True, text=True, timeout=60, cwd=folder)

    lines = completed.stdout.splitlines()
    assert "\x1b[" not in completed.stdout
    assert "loop-a (pbxware, 127.0.0.1): READY" in lines
    assert lines[-1] == "2 host(s): 1 ready, 1 not ready"


def test_quiet_prints_only_the_verdict_line(folder: Path) -> None:
    completed = subprocess.run(
        [*COMMAND, "--quiet", "--json", "r.json"], capture_output=True, text=True, timeout=60, cwd=folder
    )

    assert completed.stdout == "2 host(s): 1 ready, 1 not ready\n"
    assert completed.returncode == 1
