"""`preflight demo`: real servers on loopback, the same pipeline as `check`, reports in seconds, no root needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from tests.lab import SCHEMA
from tests.requirements import needs_setpriv_as_root


def run_demo(folder: Path, command: list[str], as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if as_nobody else []
    env = {"PATH": os.environ["PATH"], "HOME": str(folder), "LANG": "C.UTF-8"}
    return subprocess.run(
        [*prefix, *command, "demo", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env=env,
    )


def assert_demo_report(folder: Path, completed: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    assert f"HTML report: {folder / 'demo-report.html'}" in completed.stdout.splitlines()
    document = json.loads((folder / "demo-report.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    statuses = {
        host["name"]: {check["id"].split("/")[0]: check["status"] for check in host["checks"]}
        for host in document["hosts"]
    }
    assert statuses["demo-pbx"] | {"public-ip": "warn", "vantage": "warn"} == statuses["demo-pbx"]
    assert {kind: statuses["demo-pbx"][kind] for kind in ("tcp", "service", "ssh-root", "gui-login")} == dict.fromkeys(
        ("tcp", "service", "ssh-root", "gui-login"), "pass"
    )
    broken = statuses["demo-pbx-misconfigured"]
    assert (broken["public-ip"], broken["ssh-root"], broken["gui-login"]) == ("fail", "fail", "fail")
    assert "<style>" in (folder / "demo-report.html").read_text()
    return document


@pytest.fixture
def world_writable_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="preflight-demo-test-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_demo_writes_a_real_report_with_one_ready_and_one_misconfigured_host(tmp_path: Path) -> None:
    completed = run_demo(tmp_path, [sys.executable, "-m", "preflight"])

    document = assert_demo_report(tmp_path, completed)
    assert document["warnings"] == ["this is a demo: the targets were preflight's own servers on loopback"]


@needs_setpriv_as_root
def test_demo_needs_no_root(world_writable_folder: Path) -> None:
    completed = run_demo(world_writable_folder, [sys.executable, "-m", "preflight"], as_nobody=True)

    document = assert_demo_report(world_writable_folder, completed)
    methods = {
        check["evidence"]["method"]
        for host in document["hosts"]
        for check in host["checks"]
        if check["id"].startswith("tcp/")
    }
    assert methods == {"connect"}
