"""Secrets stay secret: masked in every log line at the most verbose level, and a readable inventory is flagged."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from preflight.inventory import load_inventory
from preflight.profiles import load_profiles
from preflight.redaction import MASK, RedactingFormatter, redact
from tests.lab import LabTarget, assert_no_secrets, lab_inventory, lab_secrets, new_secret, run_preflight

PROFILES = load_profiles()


def _plaintext_inventory(folder: Path, root_password: str, gui_password: str) -> Path:
    path = folder / "inventory.yaml"
    path.write_text(
        "hosts:\n"
        "  - name: pbx\n"
        "    product: pbxware\n"
        "    address: 127.0.0.1\n"
        "    ssh:\n"
        f"      root_password: {root_password}\n"
        "    gui:\n"
        "      username: admin\n"
        f"      password: {gui_password}\n"
    )
    return path


def test_redact_masks_every_secret_including_one_inside_another() -> None:
    assert redact("short=abc long=abcdef", ["abc", "abcdef"]) == f"short={MASK} long={MASK}"


def test_log_lines_are_masked_in_message_arguments_and_tracebacks() -> None:
    secret = new_secret("root")
    formatter = RedactingFormatter([secret], "%(name)s: %(message)s")
    try:
        raise RuntimeError(f"library said {secret}")
    except RuntimeError:
        record = logging.LogRecord(
            "paramiko.transport", logging.DEBUG, __file__, 1, "auth %s", (secret,), sys.exc_info()
        )

    line = formatter.format(record)

    assert secret not in line
    assert line.startswith(f"paramiko.transport: auth {MASK}")
    assert f"RuntimeError: library said {MASK}" in line


def test_a_world_readable_inventory_with_plaintext_passwords_is_flagged_with_its_lines(tmp_path: Path) -> None:
    root, gui = new_secret("root"), new_secret("gui")
    path = _plaintext_inventory(tmp_path, root, gui)
    path.chmod(0o644)

    warning = load_inventory(path, PROFILES).exposure_warning()

    assert warning == (
        "inventory.yaml holds plaintext passwords (line 6, 9) and every user of this machine can read it "
        "(mode 0644): run chmod 600 inventory.yaml, or write each password as ${ENV_VAR}"
    )
    assert root not in warning and gui not in warning


def test_a_private_inventory_or_one_with_env_passwords_is_not_flagged(tmp_path: Path) -> None:
    path = _plaintext_inventory(tmp_path, new_secret("root"), new_secret("gui"))
    path.chmod(0o600)
    assert load_inventory(path, PROFILES).exposure_warning() is None

    env_path = _plaintext_inventory(tmp_path, "${ROOT_PASSWORD}", "${GUI_PASSWORD}")
    env_path.chmod(0o644)
    inventory = load_inventory(env_path, PROFILES, {"ROOT_PASSWORD": "x1", "GUI_PASSWORD": "y2"})
    assert inventory.exposure_warning() is None


def test_the_warning_reaches_stderr_and_the_report_without_the_passwords(tmp_path: Path) -> None:
    root, gui = new_secret("root"), new_secret("gui")
    path = _plaintext_inventory(tmp_path, root, gui)
    path.chmod(0o644)
    report = tmp_path / "report.json"

    completed = subprocess.run(
        [sys.executable, "-m", "preflight", "check", str(path), "--only", "public-ip", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert completed.stderr.startswith("preflight: warning: inventory.yaml holds plaintext passwords (line 6, 9)")
    document = json.loads(report.read_text())
    assert document["warnings"] == [completed.stderr.splitlines()[0].removeprefix("preflight: warning: ")]
    assert_no_secrets({"stdout": completed.stdout, "stderr": completed.stderr, "json": report.read_text()}, [root, gui])


def test_the_most_verbose_run_logs_library_detail_and_no_secret(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target), lab_secrets(pbx_target), ["-vv"])

    assert run.exit_code == 0, run.stdout
    assert "DEBUG paramiko.transport" in run.stderr
    assert "DEBUG urllib3.connectionpool" in run.stderr
    assert "INFO preflight.runner: lab ssh-root/2020: pass" in run.stderr


def test_a_short_secret_never_mangles_a_log_line_and_a_long_one_is_always_masked() -> None:
    long_secret = new_secret("root")
    formatter = RedactingFormatter(["2020", "a", long_secret], "%(message)s")
    record = logging.LogRecord(
        "preflight.runner", logging.INFO, __file__, 1, "pbx tcp/2020: pass (a banner) %s", (long_secret,), None
    )

    assert formatter.format(record) == f"pbx tcp/2020: pass (a banner) {MASK}"


def test_verbose_run_with_a_short_password_keeps_port_numbers_and_warns_in_the_report(tmp_path: Path) -> None:
    gui = new_secret("gui")
    path = _plaintext_inventory(tmp_path, "'2020'", gui)
    path.chmod(0o600)
    report = tmp_path / "report.json"

    completed = subprocess.run(
        [sys.executable, "-m", "preflight", "check", str(path), "-v", "--only", "tcp,service", "--tcp-method", "connect",
         "--timeout", "2", "--json", str(report)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip

    assert completed.returncode == 1, completed.stderr
    assert "INFO preflight.runner: pbx service/2020: " in completed.stderr
    assert MASK not in completed.stderr
    short = (
        "inventory.yaml:6: hosts[0].ssh.root_password: is shorter than 8 characters: easy to guess, and too short "
        "for -v logs to mask it; use a longer one"
    )
    assert f"preflight: warning: {short}" in completed.stderr.splitlines()
    assert json.loads(report.read_text())["warnings"] == [short]
    assert_no_secrets({"stdout": completed.stdout, "stderr": completed.stderr, "json": report.read_text()}, [gui])
