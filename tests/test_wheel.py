"""The wheel carries checks/ and reports/: installed into a fresh venv, preflight runs from any folder,
and `preflight demo` works there as a new user's first command."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from tests.lab import REPO, LabTarget, lab_inventory, lab_secrets, run_preflight
from tests.test_demo import assert_demo_report, run_demo


def test_wheel_installs_into_a_fresh_venv_and_checks_from_another_folder(tmp_path: Path, pbx_target: LabTarget) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("preflight-*.whl")
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    subprocess.run(
        [str(environment / "bin" / "pip"), "install", "-q", str(wheel)], check=True, capture_output=True, timeout=600
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    inventory = lab_inventory(elsewhere, pbx_target)

    run = run_preflight(
        elsewhere,
        inventory,
        lab_secrets(pbx_target),
        command=[str(environment / "bin" / "preflight")],
    )

    assert run.exit_code == 0, run.stderr
    assert run.statuses("lab")["gui-login/443"] == "pass"
    assert "<style>" in run.html
    installed = subprocess.run(
        [str(environment / "bin" / "python"), "-c", "import preflight.resources as r; print(r.data_dir('checks'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=elsewhere,
    ).stdout.strip()
    assert installed.startswith(str(environment))

    # A new user's first command after installing: the demo, from an empty folder.
    first_run = tmp_path / "first-run"
    first_run.mkdir()
    assert_demo_report(first_run, run_demo(first_run, [str(environment / "bin" / "preflight")]))
