"""In CI (CI=true) no test skips for a missing tool or privilege: it fails. Every such skip goes through
tests/requirements.py, and every tool the tests ask for is one that lab/engine.sh installs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.lab import REPO

TESTS = REPO / "tests"
HELPER = TESTS / "requirements.py"
ENGINE = REPO / "lab" / "engine.sh"

# Ways to skip a test, or to decide by hand what CI means; outside the helper, each needs a reason below.
SKIP_WAYS = re.compile(
    r"pytest\.skip\(|\.skipif\(|mark\.skip\b|importorskip\(|mark\.xfail|pytest\.xfail\(|\"CI\""
    # A check left out without a word when a tool is missing is a skip too, and a silent one.
    r"|if (shutil\.)?which\([^)]*\) is not None|if not (shutil\.)?which\("
)

# Skips that are about the machine's network, not about a tool or privilege CI could install or grant: Docker's
# default networking has no IPv6 loopback, and a machine may hold every random loopback address's port 2020.
ALLOWED = {
    ("test_cli.py", 'pytest.skip(f"no free loopback address for port 2020 after {tries} tries")'),
    ("test_tcp.py", 'pytest.skip("no IPv6 loopback address")'),
    ("test_vantage.py", 'pytest.skip("this machine has no IPv4 address besides loopback")'),
}

NEED_TOOL = re.compile(r'need_tool\("([^"]+)", "([^"]+)"\)')


def _skip_sites() -> set[tuple[str, str]]:
    sites = set()
    for path in sorted(TESTS.rglob("*.py")):
        if path in (HELPER, Path(__file__)):
            continue
        for line in path.read_text().splitlines():
            if SKIP_WAYS.search(line):
                sites.add((str(path.relative_to(TESTS)), line.strip()))
    return sites


def test_every_skip_for_a_missing_tool_or_privilege_goes_through_the_helper() -> None:
    sites = _skip_sites()

    assert sites - ALLOWED == set(), "skip through tests/requirements.py (need, needs, need_tool, need_root)"
    assert ALLOWED - sites == set(), "an allowed skip is gone: remove it from ALLOWED"


def test_the_scan_sees_a_hand_made_skip(tmp_path: Path) -> None:
    # The control: the pattern does match each way of skipping that the helper replaces.
    for line in (
        'pytest.skip("nmap is not installed")',
        '@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="x")',
        'needs_root = pytest.mark.skipif(not raw_sockets_allowed(), reason="needs root")',
        'if os.environ.get("CI") == "true":',
        'paramiko = pytest.importorskip("paramiko")',
        'if shutil.which("ssh-keygen") is not None:',
    ):
        assert SKIP_WAYS.search(line), line
    assert not SKIP_WAYS.search('need_tool("nmap", "nmap")')


def test_every_tool_a_test_needs_is_installed_by_the_test_script() -> None:
    engine = ENGINE.read_text()
    wanted = {
        match.groups()
        for path in TESTS.rglob("*.py")
        if path != Path(__file__)
        for match in NEED_TOOL.finditer(path.read_text())
    }

    assert {tool for tool, _ in wanted} >= {"nmap", "ssh-keygen", "ssh-keyscan", "chromium", "redis-server"}
    for tool, package in sorted(wanted):
        assert f"command -v {tool} >/dev/null 2>&1 || missing+=({package})" in engine, (tool, package)
    for tool, package in (("setpriv", "util-linux"), ("stress-ng", "stress-ng")):
        assert f"command -v {tool} >/dev/null 2>&1 || missing+=({package})" in engine, (tool, package)


PROBE_TESTS = """
from tests.requirements import need, need_root, need_tool, needs
import pytest

def test_need_false():
    need(False, "a tool this machine lacks")

@needs(False, "a privilege this process lacks")
def test_needs_marker():
    pass

@pytest.mark.parametrize("case", ["plain", pytest.param("marked", marks=needs(False, "no raw sockets"))])
def test_needs_on_a_param(case):
    assert case == "plain"

def test_need_tool_missing():
    need_tool("preflight-no-such-tool", "no-such-package")

def test_need_true_goes_on():
    need(True, "never shown")
    assert need_tool("sh", "dash").endswith("/sh")
"""


def _outcomes(tmp_path: Path, ci: str | None) -> dict[str, int]:
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(PROBE_TESTS))
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    if ci is not None:
        env["CI"] = ci
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.requirements", "-p", "no:cacheprovider", "-rfs",
         str(tmp_path / "test_probe.py")],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env,
    )  # fmt: skip
    summary = completed.stdout.strip().splitlines()[-1]
    return {word: int(count) for count, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", summary)}


def test_a_missing_need_fails_in_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    # A marker is applied at setup, so pytest counts its failure as an error: red all the same.
    assert _outcomes(tmp_path, "true") == {"failed": 2, "errors": 2, "passed": 2}
    assert _outcomes(tmp_path, None) == {"passed": 2, "skipped": 4}
    assert _outcomes(tmp_path, "false") == {"passed": 2, "skipped": 4}
