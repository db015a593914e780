"""Hostile SSH servers in lab containers: each ends within its deadline, with its own status, in bounded memory.

Each variant is tests/hostile_ssh_server.py running inside a container of the lab image on its bridge address, port
2020 (PBXware's SSH port). The modes that log in use paramiko, bind-mounted read-only from this venv (the image has
Debian's python3 3.11 but no paramiko). `preflight check --only tcp,service,ssh-root` runs as a user would run it, in
its own process, so that its peak RSS is that of the whole run (read with os.wait4).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Status
from preflight.options import RunOptions
from preflight.probes import ssh_root
from preflight.probes.service import BANNER_BYTES_LIMIT, BANNER_LINE_LIMIT
from preflight.profiles import load_profiles
from preflight.target import Target
from tests.lab import LAB_IMAGE, new_secret, require_lab
from tests.peak_rss import measured_run

pytestmark = [pytest.mark.lab, pytest.mark.deadline]

SERVER_SCRIPT = Path(__file__).with_name("hostile_ssh_server.py")
SITE_PACKAGES = Path(__import__("paramiko").__file__).resolve().parent.parent
SSH_PORT = 2020
TIMEOUT_SECONDS = 3.0
# The promise: every check ends within --timeout + 1 s.
CHECK_DEADLINE_SECONDS = TIMEOUT_SECONDS + 1.0
# The run's checks on one host follow each other (tcp, then service, then ssh-root), each under its own deadline;
# the interpreter's start and the reports come on top (slow on a busy 2-core machine).
RUN_DEADLINE_SECONDS = 3 * CHECK_DEADLINE_SECONDS + 15.0
PEAK_RSS_LIMIT_BYTES = 150 * 1024 * 1024
# Far below what an unbounded read would keep: the long version line alone is 100 KB, the floods megabytes.
REPORT_SIZE_LIMIT_BYTES = 64 * 1024
READY_SECONDS = 30.0
KILL_AFTER_SECONDS = 120.0


@dataclass(frozen=True)
class HostileSsh:
    mode: str
    ip: str
    root_password: str


@dataclass(frozen=True)
class Expected:
    service: tuple[str, str]  # status, evidence.reason
    ssh_root: tuple[str, str]  # status, evidence.outcome (or evidence.needs when skipped)
    summary: str  # in the ssh-root summary when it ran, else in the service summary


EXPECTED = {
    "banner-flood": Expected(("fail", "not-ssh"), ("skipped", "service/2020"), "port open but not SSH: flood line"),
    "long-version": Expected(
        ("fail", "version-line-too-long"),
        ("skipped", "service/2020"),
        f"is longer than {BANNER_LINE_LIMIT} bytes (RFC 4253 allows 255): SSH-2.0-AAAA",
    ),
    "kex-stall": Expected(
        ("pass", "ssh-banner"), ("fail", "key-exchange-timeout"), "no answer within the deadline during key exchange"
    ),
    "kex-reset": Expected(
        ("pass", "ssh-banner"),
        ("fail", "connection-reset"),
        "SSH key exchange failed: the server reset the connection (TCP RST)",
    ),
    "exec-hang": Expected(
        ("pass", "ssh-banner"),
        ("fail", "command-timeout"),
        "root's login was accepted, but the SSH server did not answer `id -u` within the deadline",
    ),
    "channel-hang": Expected(
        ("pass", "ssh-banner"),
        ("fail", "session-open-timeout"),
        "root's login was accepted, but the SSH server did not open a session within the deadline",
    ),
    "uid-flood": Expected(
        ("pass", "ssh-banner"), ("fail", "uid-output-too-long"), "`id -u` printed at least 4096 bytes"
    ),
    # The control: the same server script, well behaved (with a short text preamble before its version line).
    "good": Expected(("pass", "ssh-banner"), ("pass", "root-login"), "root login works on SSH port 2020 (uid 0)"),
}


@pytest.fixture(scope="module", params=list(EXPECTED))
def hostile_ssh(request: pytest.FixtureRequest) -> Iterator[HostileSsh]:
    """A lab container whose port 2020 is tests/hostile_ssh_server.py in one mode."""
    require_lab()
    from testcontainers.core.container import DockerContainer

    mode: str = request.param
    password = new_secret("root")
    container = (
        DockerContainer(LAB_IMAGE)
        .with_kwargs(entrypoint=["python3"])
        .with_command(["/opt/hostile/ssh_server.py", mode, str(SSH_PORT)])
        .with_volume_mapping(SERVER_SCRIPT, "/opt/hostile/ssh_server.py", "ro")
        .with_volume_mapping(SITE_PACKAGES, "/opt/hostile/site-packages", "ro")
        .with_env("PYTHONPATH", "/opt/hostile/site-packages")
        .with_env("HOSTILE_ROOT_PASSWORD", password)
    )
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        give_up_at = time.monotonic() + READY_SECONDS
        # The server prints this line once it listens; waiting on the log makes no connection a flood would answer.
        while b"listening on" not in wrapped.logs():
            wrapped.reload()
            if wrapped.status != "running" or time.monotonic() > give_up_at:
                raise RuntimeError(f"hostile SSH server ({mode}) did not start: {wrapped.logs()[-2000:]!r}")
            time.sleep(0.1)
        wrapped.reload()
        yield HostileSsh(mode, wrapped.attrs["NetworkSettings"]["IPAddress"], password)
    finally:
        container.stop()


@dataclass(frozen=True)
class CheckRun:
    exit_code: int
    elapsed: float
    peak_rss_bytes: int
    stdout: str
    stderr: str
    report_text: str
    known_hosts_text: str

    def check(self, check_id: str) -> dict[str, Any]:
        report = json.loads(self.report_text)
        return next(check for check in report["hosts"][0]["checks"] if check["id"] == check_id)

    def checks(self) -> list[dict[str, Any]]:
        return list(json.loads(self.report_text)["hosts"][0]["checks"])


def run_check(folder: Path, target: HostileSsh) -> CheckRun:
    """`preflight check --only tcp,service,ssh-root` at -vv in a process of its own; its peak RSS from os.wait4."""
    inventory = folder / "inventory.yaml"
    host = {
        "name": "hostile",
        "product": "pbxware",
        "address": target.ip,
        "require_public_ip": False,
        "ssh": {"root_password": "${ROOT_PASSWORD}"},
    }
    inventory.write_text(yaml.safe_dump({"hosts": [host]}, sort_keys=False))
    report = folder / "report.json"
    stdout, stderr = folder / "stdout.txt", folder / "stderr.txt"
    command = [sys.executable, "-m", "preflight", "check", str(inventory), "--only", "tcp,service,ssh-root"]
    command += ["--timeout", f"{TIMEOUT_SECONDS:g}", "--json", str(report), "-vv"]
    environ = {**os.environ, "ROOT_PASSWORD": target.root_password, "XDG_STATE_HOME": str(folder / "state")}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.monotonic()
        exit_code, peak_rss_bytes = measured_run(
            command, folder / "rusage.json", KILL_AFTER_SECONDS, out=out, err=err, env=environ
        )
        elapsed = time.monotonic() - started
    known_hosts = folder / "state" / "preflight" / "known_hosts"
    return CheckRun(
        exit_code=exit_code,
        elapsed=elapsed,
        peak_rss_bytes=peak_rss_bytes,
        stdout=stdout.read_text(errors="replace"),
        stderr=stderr.read_text(errors="replace"),
        report_text=report.read_text(),
        known_hosts_text=known_hosts.read_text() if known_hosts.exists() else "",
    )


def test_hostile_ssh_port_gets_its_own_status_within_the_deadline_in_bounded_memory(
    hostile_ssh: HostileSsh, tmp_path: Path
) -> None:
    expected = EXPECTED[hostile_ssh.mode]

    run = run_check(tmp_path, hostile_ssh)

    # At -vv paramiko logs tracebacks of failed handshakes, each line a log record; preflight's own would be bare.
    assert not [line for line in run.stderr.splitlines() if line.startswith("Traceback")], run.stderr[-3000:]
    assert "error" not in [check["status"] for check in run.checks()]
    # Other lab ports (80, 81, 443) are closed in these containers, so no run is ready; none is a usage error.
    assert run.exit_code == 1, run.stderr[-3000:]
    service, login = run.check(f"service/{SSH_PORT}"), run.check(f"ssh-root/{SSH_PORT}")
    assert run.check(f"tcp/{SSH_PORT}")["status"] == "pass"
    assert (service["status"], service["evidence"]["reason"]) == expected.service, service["summary"]
    login_key = "needs" if login["status"] == "skipped" else "outcome"
    assert (login["status"], login["evidence"][login_key]) == expected.ssh_root, login["summary"]
    shown = login if login["status"] != "skipped" else service
    assert expected.summary in shown["summary"]
    if shown["status"] != "pass":
        assert str(SSH_PORT) in shown["remediation"]
    for check in run.checks():
        assert check["duration_ms"] <= CHECK_DEADLINE_SECONDS * 1000, check
    assert run.elapsed < RUN_DEADLINE_SECONDS
    assert run.peak_rss_bytes < PEAK_RSS_LIMIT_BYTES, f"peak RSS {run.peak_rss_bytes / 2**20:.1f} MiB"
    assert len(run.report_text) < REPORT_SIZE_LIMIT_BYTES
    for where, text in {
        "stdout": run.stdout,
        "stderr": run.stderr,
        "json": run.report_text,
        "known_hosts": run.known_hosts_text,
    }.items():
        assert hostile_ssh.root_password not in text, f"the root password leaked into {where}"
    print(
        f"{hostile_ssh.mode}: service {service['status']}/{service['evidence']['reason']}, ssh-root {login['status']}/"
        f"{login['evidence'][login_key]} in {login['duration_ms']:.0f} ms; run {run.elapsed:.2f} s, peak RSS "
        f"{run.peak_rss_bytes / 2**20:.1f} MiB"
    )


# The runner never gets ssh-root to these (service/2020 fails first), so the probe meets them directly: paramiko on its
# own reads the lines before the version line, and the version line itself, without a bound.
@pytest.mark.parametrize(
    ("hostile_ssh", "outcome", "problem"),
    [
        ("banner-flood", "banner-flood", f"no SSH version line within the first {BANNER_BYTES_LIMIT} bytes"),
        (
            "long-version",
            "version-line-too-long",
            f"the server's version line is longer than {BANNER_LINE_LIMIT} bytes",
        ),
    ],
    indirect=["hostile_ssh"],
)
def test_ssh_root_reads_only_a_bounded_banner(
    hostile_ssh: HostileSsh, outcome: str, problem: str, tmp_path: Path
) -> None:
    finding, elapsed = _probe_ssh_root(hostile_ssh, tmp_path)

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, outcome), finding.summary
    assert f"SSH banner exchange failed: {problem}" in finding.summary
    # paramiko reads 128 bytes at a time: what it kept is the bound and at most one read more.
    assert finding.evidence["banner_bytes_read"] <= BANNER_BYTES_LIMIT + 128
    assert len(json.dumps(finding.evidence)) < 2048
    assert elapsed < CHECK_DEADLINE_SECONDS
    assert hostile_ssh.root_password not in repr(finding)


@pytest.mark.parametrize("hostile_ssh", ["good"], indirect=True)
def test_ssh_root_accepts_a_short_preamble_before_the_version_line(hostile_ssh: HostileSsh, tmp_path: Path) -> None:
    finding, _ = _probe_ssh_root(hostile_ssh, tmp_path)

    assert (finding.status, finding.evidence["outcome"], finding.evidence["uid"]) == (Status.PASS, "root-login", 0)


def _probe_ssh_root(target: HostileSsh, folder: Path) -> tuple[Any, float]:
    profiles = load_profiles()
    host = Host.model_validate(
        {"name": "hostile", "product": "pbxware", "address": target.ip, "ssh": {"root_password": target.root_password}},
        context={"profiles": profiles, "inventory_dir": folder},
    )
    probe_target = Target(
        f"ssh-root/{SSH_PORT}",
        "r",
        host,
        profiles["pbxware"],
        port=SSH_PORT,
        ip=target.ip,
        addresses=(target.ip,),
        options=RunOptions(known_hosts=folder / "known_hosts"),
    )
    started = time.monotonic()
    finding = ssh_root.run(probe_target, Deadline(TIMEOUT_SECONDS))
    return finding, time.monotonic() - started


@pytest.mark.parametrize(
    ("megabytes", "over_the_limit"), [(0, False), (200, True)], ids=["small-child", "200-MiB-child"]
)
def test_peak_rss_measure_sees_the_run_and_only_the_run(megabytes: int, over_the_limit: bool, tmp_path: Path) -> None:
    """The measure is neither blind (a child that touches 200 MiB is over the limit) nor inflated by pytest's own
    memory (a child that holds nothing is far under it)."""
    touch = f"b = bytearray({megabytes} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"

    exit_code, peak = measured_run([sys.executable, "-c", touch], tmp_path / "rusage.json", KILL_AFTER_SECONDS)

    assert exit_code == 0
    assert (peak > PEAK_RSS_LIMIT_BYTES) is over_the_limit, f"{peak / 2**20:.1f} MiB"
    if not over_the_limit:
        assert peak < 40 * 1024 * 1024, f"{peak / 2**20:.1f} MiB"
