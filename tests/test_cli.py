"""The command line's contract: one-line usage errors with exit 2, and nothing probed on bad input."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from tests.deadlines import within_deadline
from tests.lab import SCHEMA
from tests.requirements import need, needs_setpriv_as_root

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
            "preflight check: error: argument --only: unknown check kind nope; known: gui-login, public-ip, rtp, service, setup-wizard-login, sip, ssh-root, tcp, vantage",
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
            "preflight: error: argument command: invalid choice: 'frobnicate' (choose from 'check', 'validate', 'demo', 'render', 'verify', 'serve', 'worker', 'users', 'tokens')",
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
    need(script.exists(), "the preflight console script is not installed next to this interpreter (pip install -e .)")
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


# --- outputs that must not destroy or mislead ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["check", "inventory.yaml", "--html", "inventory.yaml"],
            "preflight: error: --html inventory.yaml: is the same file as the inventory inventory.yaml; "
            "write each output to its own path",
        ),
        (
            ["check", "inventory.yaml", "--json", "./inventory.yaml"],
            "preflight: error: --json inventory.yaml: is the same file as the inventory inventory.yaml; "
            "write each output to its own path",
        ),
        (
            ["check", "inventory.yaml", "--json", "r.out", "--html", "r.out"],
            "preflight: error: --html r.out: is the same file as --json r.out; write each output to its own path",
        ),
        (
            ["check", "inventory.yaml", "--html", "link.html", "--junit", "r.xml"],
            "preflight: error: --junit r.xml: is the same file as --html link.html; write each output to its own path",
        ),
        (
            ["check", "inventory.yaml", "--junit", "known_hosts", "--known-hosts", "known_hosts"],
            "preflight: error: --junit known_hosts: is the same file as --known-hosts known_hosts; "
            "write each output to its own path",
        ),
        (
            ["render", "saved.json", "--html", "saved.json"],
            "preflight: error: --html saved.json: is the same file as the report saved.json; "
            "write each output to its own path",
        ),
        (
            ["render", "saved.json", "--html", "r.html", "--junit", "r.html"],
            "preflight: error: --junit r.html: is the same file as --html r.html; write each output to its own path",
        ),
    ],
)
def test_an_output_that_is_an_input_or_another_output_is_refused_before_anything_runs(
    tmp_path: Path, inventory: Path, args: list[str], message: str
) -> None:
    (tmp_path / "r.xml").write_text("old junit\n")
    (tmp_path / "link.html").symlink_to(tmp_path / "r.xml")
    (tmp_path / "saved.json").write_text("{}\n")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}

    completed = _preflight(*args, cwd=tmp_path)

    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [message]
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before


def test_reports_are_written_whole_and_leave_no_temporary_files(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(VALID.replace("127.0.0.1", "localhost"))
    (tmp_path / "r.json").write_text("the previous report\n")

    completed = _preflight(
        "check", "inventory.yaml", "--only", "public-ip", "--json", "r.json", "--html", "r.html", cwd=tmp_path
    )

    assert completed.returncode == 1, completed.stderr
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["hosts"] == 1
    assert (tmp_path / "r.html").read_text().rstrip().endswith("</html>")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory.yaml", "r.html", "r.json"]


def _stalling_ssh_port() -> tuple[str, socket.socket]:
    """A listener on port 2020 of a loopback address of its own, that accepts and never says a word."""
    tries = 20
    for _ in range(tries):
        # A random address in 127/8, so parallel runs and local services on 127.0.0.1:2020 do not collide.
        address = f"127.{secrets.randbelow(254) + 1}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
        listener = socket.socket()
        try:
            listener.bind((address, 2020))
        except OSError:
            listener.close()
            continue
        listener.listen(16)
        return address, listener
    pytest.skip(f"no free loopback address for port 2020 after {tries} tries")


@pytest.mark.deadline
def test_one_ctrl_c_stops_a_stalled_run_at_once_and_writes_nothing(tmp_path: Path) -> None:
    address, listener = _stalling_ssh_port()
    held: list[socket.socket] = []
    accepted = threading.Event()

    def hold() -> None:
        listener.settimeout(0.2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)
            if len(held) >= 2:  # the port scan's connect, then the service check waiting for a banner
                accepted.set()

    threading.Thread(target=hold, daemon=True).start()
    (tmp_path / "inventory.yaml").write_text(
        f"hosts:\n  - {{name: stalls, product: pbxware, address: {address}, require_public_ip: false}}\n"
    )
    (tmp_path / "r.json").write_text("the previous report\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "preflight", "check", "inventory.yaml", "--only", "tcp,service", "--tcp-method",
         "connect", "--timeout", "30", "--json", "r.json", "--html", "r.html", "--junit", "r.xml"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert accepted.wait(30), "the service check never connected"
        time.sleep(0.3)
        assert run.poll() is None, "the run ended before it was interrupted"
        interrupted_at = time.monotonic()
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=10)
        elapsed = time.monotonic() - interrupted_at
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        listener.close()
        for connection in held:
            connection.close()

    assert run.returncode == 130, stderr
    # Measured with both cores busy (stress-ng --cpu 2, tests/test_deadline_slack.py): 0.55 s, so 0.95 s to spare.
    within_deadline(elapsed, 1.5, "ctrl-c to exit")
    assert stderr.splitlines()[-1] == "preflight: interrupted"
    assert "Traceback" not in stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory.yaml", "r.json"]
    assert (tmp_path / "r.json").read_text() == "the previous report\n"


# --- the first commands a new user types ---------------------------------------------------------------------------


def test_bare_preflight_prints_the_usage_and_every_command_with_exit_2(tmp_path: Path) -> None:
    completed = _preflight(cwd=tmp_path)

    assert completed.returncode == 2
    assert completed.stderr.startswith("usage: preflight ")
    for command, help_text in [
        ("check", "probe every host in an inventory and report readiness"),
        ("validate", "check an inventory file without probing anything"),
        ("demo", "check two throwaway hosts on loopback"),
        ("render", "render a saved JSON report again"),
    ]:
        assert any(
            line.split() and line.split()[0] == command and help_text in line for line in completed.stderr.splitlines()
        )


def test_check_help_ends_with_an_example_and_the_exit_codes(tmp_path: Path) -> None:
    completed = _preflight("check", "--help", cwd=tmp_path)

    assert completed.returncode == 0
    assert completed.stdout.endswith(
        "example:\n"
        "  preflight check inventory.yaml --json report.json --html report.html\n"
        "\n"
        "exit codes:\n"
        "  0    every host is ready\n"
        "  1    at least one host is not ready (the reports say what to fix)\n"
        "  2    usage or input error: a bad option, inventory or output path; nothing was probed\n"
        "  130  interrupted (Ctrl-C); no report was written\n"
    )


TWO_HOSTS = """\
hosts:
  - {name: one, product: pbxware, address: localhost, require_public_ip: true}
  - {name: two, product: pbxware, address: localhost, require_public_ip: true}
  - {name: three, product: pbxware, address: localhost, require_public_ip: true}
"""


@pytest.mark.parametrize(
    ("host_args", "checked"),
    [
        (["--host", "two"], ["two"]),
        (["--host", "one", "--host", "three"], ["one", "three"]),
        (["--host", "three,two"], ["two", "three"]),
    ],
)
def test_host_takes_one_name_per_option_or_names_separated_by_commas(
    tmp_path: Path, host_args: list[str], checked: list[str]
) -> None:
    (tmp_path / "inventory.yaml").write_text(TWO_HOSTS)

    # --host right before the inventory: it must not swallow it.
    completed = _preflight(
        "check", "--only", "public-ip", "--json", "r.json", *host_args, "inventory.yaml", cwd=tmp_path
    )

    assert completed.returncode == 1, completed.stderr
    assert [host["name"] for host in json.loads((tmp_path / "r.json").read_text())["hosts"]] == checked


def test_demo_creates_the_out_folder(tmp_path: Path) -> None:
    completed = _preflight("demo", "--out", "reports/demo", cwd=tmp_path)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "reports" / "demo" / "demo-report.html").is_file()
    assert (tmp_path / "reports" / "demo" / "demo-report.json").is_file()


def test_demo_out_that_cannot_be_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")

    completed = _preflight("demo", "--out", "afile/demo", cwd=tmp_path)

    assert completed.returncode == 2
    assert completed.stderr == "preflight: error: demo --out afile/demo: cannot create the folder: Not a directory\n"


@needs_setpriv_as_root
def test_demo_where_it_cannot_write_says_so_without_naming_an_option_not_given() -> None:
    folder = Path(tempfile.mkdtemp(prefix="preflight-readonly-"))
    try:
        folder.chmod(0o755)  # root's folder: nobody may enter it but not write in it
        completed = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "preflight", "demo"],
            capture_output=True, text=True, timeout=60, cwd=folder,
            env={"PATH": os.environ["PATH"], "HOME": str(folder), "LANG": "C.UTF-8"},
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    assert completed.returncode == 2
    assert completed.stderr == (
        f"preflight: error: demo: cannot write its reports in this folder ({folder}): Permission denied; "
        "run it in a folder you can write to, or give --out DIR\n"
    )
    assert completed.stdout == ""
