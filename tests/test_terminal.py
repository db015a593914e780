"""The terminal: live progress and a table on a TTY; plain lines without one, with NO_COLOR, or with --quiet."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lab import write_inventory
from tests.requirements import need

INVENTORY = """\
hosts:
  - {name: loop-a, product: pbxware, address: 127.0.0.1, require_public_ip: false}
  - {name: loop-b, product: pbxware, address: 127.0.0.1}
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COMMAND = [sys.executable, "-m", "preflight", "check", "inventory.yaml", "--only", "public-ip"]


def _on_a_terminal(folder: Path, *extra: str, env: dict[str, str] | None = None, command: list[str] = COMMAND) -> str:
    """Run preflight with its stdout on a pseudo-terminal, as a person at a shell would; return what it drew."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*command, *extra],
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


# A SERVERware host on loopback: nothing listens on its five ports here, so every port is closed and the
# ten checks that need them are skipped, each for one of those five causes.
UNREACHABLE = """\
hosts:
  - {name: dark, product: serverware, address: 127.51.0.9, require_public_ip: false}
"""
CHECK_UNREACHABLE = ["--only", "tcp,service,ssh-root,gui-login", "--timeout", "3", "--json", "r.json"]


def _unreachable(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The dark host's report; skips the test if this machine does serve one of its ports on loopback."""
    write_inventory(tmp_path, UNREACHABLE)
    subprocess.run([*COMMAND[:5], *CHECK_UNREACHABLE], capture_output=True, timeout=60, cwd=tmp_path)
    report: dict[str, Any] = json.loads((tmp_path / "r.json").read_text())
    (tmp_path / "r.json").unlink()
    tcp = [check for check in report["hosts"][0]["checks"] if check["id"].startswith("tcp/")]
    if any(check["status"] != "fail" for check in tcp):
        # Only a listener on every address (0.0.0.0) answers 127.51.0.9; in CI nothing may hide this test.
        need(False, "something on this machine listens on a SERVERware port on every address")
    return tmp_path, report


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_terminal_table_fits_80_columns_and_lists_every_failure_with_its_fix(tmp_path: Path) -> None:
    folder, report = _unreachable(tmp_path)

    raw = _on_a_terminal(folder, *CHECK_UNREACHABLE, env={"COLUMNS": "80"}, command=COMMAND[:5])
    drawn = ANSI.sub("", raw).replace("\r", "")
    final = drawn[drawn.index("1 host(s): 0 ready, 1 not ready") :]

    too_wide = [line for line in final.splitlines() if len(line) > 80]
    assert too_wide == []
    assert "┃ Host" in final and "NOT READY" in final
    failures = [check for check in report["hosts"][0]["checks"] if check["status"] == "fail"]
    assert len(failures) == 5
    for check in failures:
        assert _flat(check["remediation"]) in _flat(final), f"{check['id']}'s fix is missing"


def test_plain_output_prints_each_failure_fix_and_one_line_per_cause(tmp_path: Path) -> None:
    folder, report = _unreachable(tmp_path)

    completed = subprocess.run(
        [*COMMAND[:5], *CHECK_UNREACHABLE], capture_output=True, text=True, timeout=60, cwd=folder
    )

    lines = completed.stdout.splitlines()
    checks = report["hosts"][0]["checks"]
    causes = [line for line in lines if line.startswith(("  FAIL", "  ERROR", "  SKIPPED"))]
    assert len(causes) == 5, completed.stdout
    assert [line.split()[1].rstrip(":") for line in causes] == ["tcp/80", "tcp/81", "tcp/443", "tcp/2020", "tcp/2222"]
    assert "(blocks service/443, gui-login/443)" in causes[2]
    for check in checks:
        if check["status"] == "fail":
            assert f"          fix: {check['remediation']}" in lines
    # The verdict, a line and a fix for each of the five causes, the summary, and where the report went.
    assert len(lines) == 1 + 2 * 5 + 1 + 1
