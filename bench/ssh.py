"""Root logins at speed: preflight against a bare paramiko loop and OpenSSH (sshpass, xargs -P16).

One lab container (real OpenSSH sshd, from the image lab/build.sh makes); LOGINS root logins that each
run `id -u`, timed in the same run for each tool. Run as root with Docker: see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.measure import timed

IMAGE = os.environ.get("PREFLIGHT_LAB_IMAGE", "preflight-lab-target:latest")
PORT = 2020
WORKERS = 16
READY_SECONDS = 60


@contextmanager
def lab_sshd(root_password: str, password_hash: str) -> Iterator[str]:
    """A lab container with sshd on 2020; yields its bridge address once sshd sends its banner."""
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-e", f"ROOT_PASSWORD={root_password}", "-e", "GUI_USERNAME=admin",
         "-e", f"ROOT_PASSWORD_HASH={password_hash}",
         "-e", f"GUI_PASSWORD={secrets.token_urlsafe(12)}", "-e", f"SSH_PORTS={PORT}", IMAGE],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    try:
        ip = subprocess.run(
            ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", container],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        give_up_at = time.monotonic() + READY_SECONDS
        while time.monotonic() < give_up_at:
            try:
                with socket.create_connection((ip, PORT), timeout=1) as sock:
                    sock.settimeout(1)
                    if sock.recv(8).startswith(b"SSH-2.0"):
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the lab sshd did not start")
        yield ip
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)


@dataclass
class Measured:
    tool: str
    wall_seconds: float
    peak_rss_mb: float
    confirmed: int


def run_preflight(ip: str, logins: int, workdir: Path, environ: dict[str, str], extra: list[str]) -> Measured:
    inventory = workdir / "inventory.yaml"
    lines = ["defaults:", "  product: pbxware", "  require_public_ip: false",
             "  ssh: {root_password: '${ROOT_PASSWORD}'}", "hosts:"]  # fmt: skip
    lines += [f"  - {{name: pbx{index}, address: {ip}}}" for index in range(logins)]
    inventory.write_text("\n".join(lines) + "\n")
    inventory.chmod(0o600)
    report = workdir / "report.json"
    command = [sys.executable, "-m", "preflight", "check", str(inventory), "--only", "ssh-root", "--json", str(report),
               *extra]  # fmt: skip
    wall, rss, _ = timed(command, workdir / "preflight.out", environ)

    checks = [check for host in json.loads(report.read_text())["hosts"] for check in host["checks"]]
    confirmed = sum(1 for check in checks if check["status"] == "pass" and check["evidence"].get("uid") == 0)
    label = " ".join(["preflight", *extra]) if extra else "preflight (defaults)"
    return Measured(label, wall, rss, confirmed)


def run_paramiko_loop(ip: str, logins: int, workdir: Path, environ: dict[str, str]) -> Measured:
    command = [sys.executable, "-m", "bench.paramiko_loop", ip, str(PORT), str(logins), str(WORKERS)]
    output = workdir / "paramiko.out"
    wall, rss, _ = timed(command, output, environ)
    last = output.read_text().strip().splitlines()[-1:] or [""]
    confirmed = int(last[0].split()[0]) if last[0].endswith("confirmed uid 0") else 0
    return Measured(f"paramiko ThreadPoolExecutor({WORKERS})", wall, rss, confirmed)


def run_openssh(ip: str, logins: int, workdir: Path, environ: dict[str, str]) -> Measured:
    ssh = (
        f"sshpass -e ssh -n -p {PORT} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o GlobalKnownHostsFile=/dev/null -o PubkeyAuthentication=no -o PreferredAuthentications=password "
        f"-o LogLevel=ERROR -o ConnectTimeout=30 root@{ip} id -u"
    )
    command = ["bash", "-c", f"seq {logins} | xargs -P{WORKERS} -I{{}} {ssh}"]
    output = workdir / "openssh.out"
    wall, rss, _ = timed(command, output, {**environ, "SSHPASS": environ["ROOT_PASSWORD"]})
    confirmed = sum(1 for line in output.read_text().splitlines() if line.strip() == "0")
    return Measured(f"OpenSSH ssh + sshpass, xargs -P{WORKERS}", wall, rss, confirmed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool; the median is shown (default 3)")
    parser.add_argument(
        "--password-hash",
        nargs="+",
        default=["YESCRYPT", "SHA512"],
        help="crypt methods for root's password in the lab (default: Debian's YESCRYPT, then SHA512)",
    )
    args = parser.parse_args()
    complete = True
    for password_hash in args.password_hash:
        runs = measure(args.logins, password_hash, args.repeats)
        baseline, openssh = runs[0], runs[-1]
        print(
            f"\n== {args.logins} root logins (each runs id -u) against one lab sshd; root password hash "
            f"{password_hash}; median of {args.repeats}"
        )
        print(f"{'tool':40} {'wall s':>8} {'vs paramiko':>12} {'vs OpenSSH':>11} {'peak RSS MB':>12}  uid 0 confirmed")
        for run in runs:
            ratios = f"{run.wall_seconds / baseline.wall_seconds:12.2f} {run.wall_seconds / openssh.wall_seconds:11.2f}"
            print(
                f"{run.tool:40} {run.wall_seconds:8.2f} {ratios} {run.peak_rss_mb:12.1f}  {run.confirmed}/{args.logins}"
            )
        complete &= all(run.confirmed == args.logins for run in runs)
    return 0 if complete else 1


def measure(logins: int, password_hash: str, repeats: int) -> list[Measured]:
    """Each tool `repeats` times, taking turns so that a noisy moment hits all of them; the median wall time."""
    root_password = secrets.token_urlsafe(16)
    with lab_sshd(root_password, password_hash) as ip, tempfile.TemporaryDirectory(prefix="pf-ssh-bench-") as folder:
        workdir = Path(folder)
        environ = {**os.environ, "ROOT_PASSWORD": root_password, "XDG_STATE_HOME": str(workdir / "state")}
        tools = [
            lambda: run_paramiko_loop(ip, logins, workdir, environ),
            lambda: run_preflight(ip, logins, workdir, environ, []),
            lambda: run_preflight(ip, logins, workdir, environ, ["--concurrency", str(WORKERS)]),
            lambda: run_openssh(ip, logins, workdir, environ),
        ]
        rounds = [[tool() for tool in tools] for _ in range(repeats)]
        for output in workdir.glob("*.out"):
            if root_password in output.read_text():
                raise RuntimeError(f"the root password appeared in {output.name}")
    return [
        Measured(
            runs[0].tool,
            statistics.median(run.wall_seconds for run in runs),
            max(run.peak_rss_mb for run in runs),
            min(run.confirmed for run in runs),
        )
        for runs in zip(*rounds, strict=True)
    ]


if __name__ == "__main__":
    sys.exit(main())
