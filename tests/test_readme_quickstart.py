"""The README's quick start, run as written by a non-root user in a fresh Debian 12 container.

The container is built the way the lab builds its images (lab/build.sh --quickstart: debootstrap bookworm,
docker import, then apt installs pipx, python3-venv and sudo). It runs with `--network none`, because a
container on this machine cannot use PyPI: the host reaches PyPI through an egress proxy whose certificate
only the host trusts, so pip in a container fails certificate verification. The host therefore builds a
wheelhouse of preflight's dependencies (and of hatchling, its build backend), and pip inside the container
reads it through PIP_FIND_LINKS and PIP_NO_INDEX, set in the environment: the commands stay the README's.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.lab import REPO
from tests.markdown_blocks import marked_block
from tests.requirements import need

IMAGE = "preflight-quickstart:latest"
WHEELHOUSE_ROOT = REPO / ".cache" / "quickstart-wheelhouse"
# pip, setuptools and wheel: pipx 1.1 upgrades them in its shared environment before it installs anything.
TOOLING = ["hatchling>=1.21", "pip", "setuptools", "wheel"]
# Wanted only by Debian 12's Python (3.11.2), not by the host's, so the host's pip would not fetch it:
# redis-py requires async-timeout before Python 3.11.3.
CONTAINER_ONLY = ["async-timeout>=4.0.3"]


def _requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"], *TOOLING, *CONTAINER_ONLY]


def _wheelhouse() -> Path:
    """Wheels of every requirement, built on the host once per requirement list."""
    requirements = _requirements()
    digest = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:12]
    folder = WHEELHOUSE_ROOT / digest
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(folder), *requirements],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if built.returncode != 0:
        pytest.fail(f"could not build the wheelhouse: {built.stderr[-2000:]}")
    (folder / ".complete").touch()
    return folder


def _source_tree(destination: Path) -> Path:
    """The files a clone of the repository holds (tracked, and new files not ignored), copied."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="module")
def quickstart_image() -> str:
    available = (
        shutil.which("docker") is not None and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    )
    need(available, "docker is not available (lab/engine.sh installs and starts it)")
    built = subprocess.run(
        ["bash", str(REPO / "lab" / "build.sh"), "--quickstart"], capture_output=True, text=True, timeout=900
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return IMAGE


QUICK_STARTS = ["quickstart", "quickstart-venv"]


@pytest.mark.parametrize("marker", QUICK_STARTS)
def test_the_quickstart_block_is_found_and_is_a_shell_block(marker: str) -> None:
    block = marked_block(REPO / "README.md", marker)

    assert block.lang == "sh"
    assert "preflight demo" in block.text.splitlines()[-1]
    assert "python3 -m pip install" not in block.text


@pytest.mark.parametrize("marker", QUICK_STARTS)
def test_the_readme_quickstart_runs_as_written_on_a_fresh_debian(
    quickstart_image: str, tmp_path: Path, marker: str
) -> None:
    block = marked_block(REPO / "README.md", marker)
    source = _source_tree(tmp_path / "preflight")
    wheelhouse = _wheelhouse()
    script = tmp_path / "quickstart.sh"
    # The clone stands in for `git clone`; the block then runs line by line, stopping at the first failure.
    script.write_text(f"set -euo pipefail\ncp -r /src ~/preflight\ncd ~/preflight\nset -x\n{block.text}")
    script.chmod(0o644)
    for path in [source, *source.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    completed = subprocess.run(
        [
            "docker", "run", "--rm", "--network", "none",
            "-v", f"{source}:/src:ro",
            "-v", f"{wheelhouse}:/wheelhouse:ro",
            "-v", f"{script}:/quickstart.sh:ro",
            "-e", "PIP_FIND_LINKS=/wheelhouse", "-e", "PIP_NO_INDEX=1",
            quickstart_image,
            "bash", "-c", "bash /quickstart.sh && ls ~/preflight/demo-report.html ~/preflight/demo-report.json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip

    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    assert "HTML report: /home/user/preflight/demo-report.html" in completed.stdout
    assert "Traceback" not in output
