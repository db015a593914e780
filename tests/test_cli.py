"""The command line's contract: one-line usage errors with exit 2, and nothing probed on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.lab import SCHEMA

VALID = """\
hosts:
  - name: pbx
    product: pbxware
    address: 127.0.0.1
"""


def _preflight(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(VALID)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["check", "{inv}", "--only", "nope"],
            "preflight check: error: argument --only: unknown check kind nope; known: gui-login, public-ip, service, ssh-root, tcp, vantage",
        ),
        (
            ["check", "{inv}", "--timeout", "0"],
            "preflight check: error: argument --timeout: must be more than 0 and at most 3600 seconds, not 0",
        ),
        (
            ["check", "{inv}", "--timeout", "soon"],
            "preflight check: error: argument --timeout: must be a number of seconds, not 'soon'",
        ),
        (
            ["check", "{inv}", "--concurrency", "0"],
            "preflight check: error: argument --concurrency: must be a whole number from 1 to 4096, not '0'",
        ),
        (
            ["check", "{inv}", "--host", "other"],
            "preflight: error: --host other: no such host in inventory.yaml; known: pbx",
        ),
        (
            ["check", "{inv}", "--json", "/nonexistent-folder/r.json"],
            "preflight: error: --json /nonexistent-folder/r.json: cannot write: No such file or directory",
        ),
        (
            ["check", "{inv}", "--html", "{dir}"],
            "preflight: error: --html {dir}: cannot write: Is a directory",
        ),
        (["check", "missing.yaml"], "preflight: error: missing.yaml: no such file"),
        (["check"], "preflight check: error: the following arguments are required: INVENTORY"),
        (
            ["frobnicate"],
            "preflight: error: argument command: invalid choice: 'frobnicate' (choose from 'check', 'validate', 'demo', 'render')",
        ),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(tmp_path: Path, inventory: Path, args: list[str], message: str) -> None:
    placeholders = {"{inv}": str(inventory), "{dir}": str(tmp_path)}
    for placeholder, value in placeholders.items():
        args = [arg.replace(placeholder, value) for arg in args]
        message = message.replace(placeholder, value)
    completed = _preflight(*args, cwd=tmp_path)

    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [message]
    assert completed.stdout == ""


def test_validate_accepts_a_good_inventory_without_probing(tmp_path: Path, inventory: Path) -> None:
    completed = _preflight("validate", str(inventory), cwd=tmp_path)

    assert completed.returncode == 0
    assert completed.stdout == f"{inventory}: 1 host(s), valid\n"


def test_the_shipped_example_inventory_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "inventory.example.yaml"
    environ = [
        "PBX1_ROOT_PASSWORD",
        "PBX1_GUI_PASSWORD",
        "SW1_ROOT_PASSWORD",
        "SW1_ROOT_PASSWORD_2222",
        "SW1_GUI_PASSWORD",
    ]
    completed = subprocess.run(
        [sys.executable, "-m", "preflight", "validate", str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, **{name: "example-value" for name in environ}},
    )

    assert completed.returncode == 0, completed.stderr


def test_console_script_and_module_print_the_same_version(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "preflight"
    if not script.exists():
        pytest.skip("the preflight console script is not installed next to this interpreter")
    by_module = _preflight("--version", cwd=tmp_path)
    by_script = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path)

    assert by_module.stdout == by_script.stdout != ""


def test_json_dash_writes_the_report_to_stdout_and_the_summary_to_stderr(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(VALID.replace("127.0.0.1", "localhost"))

    completed = _preflight("check", str(inventory), "--only", "public-ip", "--json", "-", cwd=tmp_path)

    assert completed.returncode == 1
    report = json.loads(completed.stdout)
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    public_ip = report["hosts"][0]["checks"][0]
    assert public_ip["status"] == "fail"
    assert "is loopback" in public_ip["summary"]
    assert "127.0.0.1" in public_ip["evidence"]["resolved"]
    assert "1 host(s): 0 ready, 1 not ready" in completed.stderr
