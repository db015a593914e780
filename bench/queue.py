"""Checks through the queue at scale: N lab hosts x 5 ports through `preflight serve --queue` and 1, 2 or 4
`preflight worker` processes, against one local `preflight check` of the same inventory.

The lab is bench/scale.py's namespace (N addresses from 198.19.0.0/16, a known mix of open, closed and
filtered ports). Redis runs on loopback with a folder of its own; the service and its workers run on this
machine, checks narrowed to the reachability phase (`--only public-ip,vantage,tcp`, as the local run). The client
is `preflight check INVENTORY --remote URL`. For each run: wall time of the client, peak RSS of the service, of
each worker's consumer and of the client, and agreement of every port's state with the lab's truth.
Traffic goes only to loopback and the bench's namespace. Run as root: see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import requests

from bench.measure import timed
from bench.scale import (
    REACHABILITY_CHECKS,
    TARGET_NETWORK,
    Endpoint,
    Measured,
    ScaleLab,
    agreement,
    iter_report_hosts,
    median_run,
    run_preflight,
    scale_lab,
)

START_SECONDS = 60.0
ONE_WORKER_GOAL = 1.3
RSS_GOAL_MB = 250.0
TIME = "/usr/bin/time"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's high-water mark of resident memory (VmHWM; or its RSS now, VmRSS), read while it runs."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak(hosts: int, seed: int, batch: int, checks: int) -> int:
    """`checks` checks of the lab in a row through one service and one worker, as a service lives: the memory of
    each process after each check, to see whether it stays bounded."""
    print("| check | wall s | service CPU s | worker CPU s | service RSS now MB | service peak MB | worker RSS now MB "
          "| worker peak MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with scale_lab(hosts, seed) as lab, tempfile.TemporaryDirectory(prefix="pfsoak-") as scratch:
        folder = Path(scratch)
        with redis(folder / "redis") as queue, queued_service(folder, queue, hosts, batch, 1) as (url, token, started):
            worker, service = max(_children(started[1].pid)), started[0].pid
            for number in range(checks):
                round_folder = folder / f"check-{number}"
                round_folder.mkdir()
                cpu = _cpu_seconds(service), _cpu_seconds(worker)
                measured, _ = run_remote(lab.addresses, round_folder, url, token)
                print(f"| {number + 1} | {measured.wall_seconds:.1f} | {_cpu_seconds(service) - cpu[0]:.1f} "
                      f"| {_cpu_seconds(worker) - cpu[1]:.1f} | {_peak_rss_mb(service, 'VmRSS'):.0f} "
                      f"| {_peak_rss_mb(service):.0f} | {_peak_rss_mb(worker, 'VmRSS'):.0f} "
                      f"| {_peak_rss_mb(worker):.0f} |", flush=True)
    return 0


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in found.read_text().split()] if found.exists() else []


def _wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    give_up = time.monotonic() + START_SECONDS
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {START_SECONDS}s")


@contextmanager
def redis(folder: Path) -> Iterator[str]:
    port, password = _free_port(), secrets.token_urlsafe(12)
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password, "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def queued_service(folder: Path, queue: str, hosts: int, batch: int, workers: int) -> Iterator[tuple[str, str, list]]:  # type: ignore[type-arg]
    state = folder / "state"
    token = subprocess.run([sys.executable, "-m", "preflight", "tokens", "add", "bench", "--state", str(state)],
                           capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started: list[subprocess.Popen[bytes]] = []
    with (folder / "service.log").open("wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "preflight", "serve", "--listen", f"127.0.0.1:{port}", "--state", str(state),
             "--queue", queue, "--allow-targets", str(TARGET_NETWORK), "--max-hosts", str(hosts),
             "--limit-per-client", "1000000", "--limit-per-target", "1000000", "--max-body-token", "65536",
             "--batch-size", str(batch), "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warning")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    started.append(serve)
    try:
        _wait_http(url + "/healthz", serve)
        # At info a worker logs each check: 80,000 lines for 10,000 hosts, which slow it (BENCH_WORKER_LOG_LEVEL).
        worker_level = os.environ.get("BENCH_WORKER_LOG_LEVEL", os.environ.get("BENCH_LOG_LEVEL", "warning"))
        for number in range(workers):
            with (folder / f"worker-{number}.log").open("wb") as log:
                started.append(subprocess.Popen(
                    [sys.executable, "-m", "preflight", "worker", "--queue", queue, "--vantage", "bench",
                     "--state", str(state), "--allow-targets", str(TARGET_NETWORK), "--concurrency", "1",
                     "--log-level", worker_level],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                ))  # fmt: skip
        give_up = time.monotonic() + START_SECONDS
        while "bench" not in requests.get(url + "/api/v1/vantages", timeout=5).json()["vantages"]:
            if time.monotonic() > give_up:
                raise RuntimeError("no worker connected")
            time.sleep(0.5)
        yield url, token, started
    finally:
        for process in started:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def run_remote(lab_addresses: list[str], folder: Path, url: str, token: str) -> tuple[Measured, dict[str, float]]:
    inventory = folder / "inventory.yaml"
    lines = ["defaults:", "  product: serverware", "  require_public_ip: false", "hosts:"]
    lines += [f"  - {{name: h{index}, address: {ip}}}" for index, ip in enumerate(lab_addresses)]
    inventory.write_text("\n".join(lines) + "\n")
    report = folder / "remote.json"
    # The client's peak is taken by GNU time, which forks it from a small process: a child's ru_maxrss starts at
    # the RSS of the process that forked it, and this one has read reports of tens of megabytes by then.
    peak = folder / "client.peak"
    command = [TIME, "-f", "%M", "-o", str(peak), sys.executable, "-m", "preflight", "check", str(inventory),
               "--remote", url, "--only", REACHABILITY_CHECKS, "--json", str(report), "--quiet"]  # fmt: skip
    wall, _, status = timed(command, folder / "remote.out", env={**os.environ, "PREFLIGHT_TOKEN": token})
    client_rss = int(peak.read_text().split()[-1]) / 1024
    if status not in (0, 1):
        raise RuntimeError(f"--remote exited {status}: {(folder / 'remote.out').read_text()[-2000:]}")
    states: dict[Endpoint, str] = {}
    for host in iter_report_hosts(report):
        for check in host["checks"]:
            if check["id"].startswith("tcp/"):
                states[(host["address"], check["evidence"]["port"])] = check["evidence"]["state"]
    return Measured("remote", wall, client_rss, states), {"client": client_rss}


@contextmanager
def _scratch(keep: str | None) -> Iterator[str]:
    """A folder for the run: removed at the end, unless it is made in `keep` (BENCH_KEEP), to read its logs after."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="pfqueue-") as scratch:
            yield scratch
    else:
        yield tempfile.mkdtemp(prefix="pfqueue-", dir=keep)


def _local_round(lab: ScaleLab, scratch: Path, done: list[Measured]) -> Measured:
    """One local `preflight check` of the lab, added to `done`."""
    folder = scratch / f"local-{len(done)}"
    folder.mkdir()
    done.append(run_preflight(lab, folder))
    return done[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the local check and each remote one this many times, taking turns; show medians")
    parser.add_argument("--soak", type=int, default=0, metavar="N",
                        help="instead: N checks in a row through one service and one worker, memory after each")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("redis-server") or not Path(TIME).exists():
        print("bench/queue.py needs root (a network namespace), redis-server and GNU time", file=sys.stderr)
        return 2
    if args.soak:
        return soak(args.hosts[-1], args.seed, args.batch_size, args.soak)
    rows = []
    for hosts in args.hosts:
        keep = os.environ.get("BENCH_KEEP")  # a folder to keep the logs in, to read a run's timeline
        with scale_lab(hosts, args.seed) as lab, _scratch(keep) as scratch:
            locals_: list[Measured] = []
            remotes: dict[int, list[Measured]] = {workers: [] for workers in args.workers}
            peaks: dict[int, list[float]] = {workers: [] for workers in args.workers}
            # Rounds take turns (the machine is noisy): the local run with nothing else running, then each remote
            # run against a service and workers started for it, on a fresh Redis.
            for number in range(args.rounds):
                _local_round(lab, Path(scratch), locals_)
                for workers in args.workers:
                    folder = Path(scratch) / f"w{workers}-{number}"
                    folder.mkdir()
                    with redis(folder / "redis") as queue, \
                            queued_service(folder, queue, hosts, args.batch_size, workers) as (url, token, processes):
                        measured, _ = run_remote(lab.addresses, folder, url, token)
                        remotes[workers].append(measured)
                        sizes = [_peak_rss_mb(processes[0].pid)]
                        sizes += [max((_peak_rss_mb(child) for child in _children(process.pid)), default=0.0)
                                for process in processes[1:]]  # fmt: skip
                        before = peaks[workers] or sizes
                        peaks[workers] = [max(pair) for pair in zip(before, sizes, strict=True)]
            local = median_run(locals_, lab.truth)
            right, _ = agreement(local, lab.truth)
            rows.append((hosts, "local preflight check", local.wall_seconds, "1.00", f"{local.peak_rss_mb:.0f}",
                         f"{right}/{len(lab.truth)}"))
            for workers in args.workers:
                remote = median_run(remotes[workers], lab.truth)
                right, wrong = agreement(remote, lab.truth)
                service_rss, *worker_rss = peaks[workers]
                rss = f"service {service_rss:.0f}, workers {', '.join(f'{r:.0f}' for r in worker_rss)}, " \
                      f"client {remote.peak_rss_mb:.0f}"
                turns = zip(remotes[workers], locals_, strict=True)
                ratios = sorted(run.wall_seconds / own.wall_seconds for run, own in turns)
                spread = f" (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
                rows.append((hosts, f"--remote, {workers} worker(s)", remote.wall_seconds,
                             f"{remote.wall_seconds / local.wall_seconds:.2f}{spread}", rss,
                             f"{right}/{len(lab.truth)}"))  # fmt: skip
                if wrong:
                    print("\n".join(wrong[:10]), file=sys.stderr)
    if args.rounds > 1:
        print(f"(medians of {args.rounds} rounds taken in turns, peak RSS the largest; 'rounds' is the range of each "
              "round's own ratio)")
    print("| hosts | run | wall s | vs local | peak RSS MB | states right |")
    print("|---:|---|---:|---:|---|---:|")
    for count, label, wall, ratio, rss, states in rows:
        print(f"| {count} | {label} | {wall:.1f} | {ratio} | {rss} | {states} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
