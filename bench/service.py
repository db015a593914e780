"""The service under a burst: 50 concurrent API submissions of one lab host each, against one local run of the 50.

The lab is bench/scale.py's namespace (veth, addresses from 198.19.0.0/16 on its loopback, deep-backlog
listeners on 80, 81, 443, 2020 and 2222), with every port open. `preflight serve` runs on loopback with
`--allow-targets 198.19.0.0/16`; the bench posts one single-host inventory per lab address, all at once, and
times each answer (time to accept) and the time from the first post to the last verdict. The same hosts then
go through one local `preflight check`. Traffic goes only to loopback and the bench's namespace.
Run as root: see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.measure import timed
from bench.scale import TARGET_NETWORK, scale_lab

PRODUCT = "pbxware"
START_SECONDS = 30.0
ACCEPT_GOAL_MS = 100.0
VERDICT_GOAL_RATIO = 1.5
REQUEST_SECONDS = 30.0
# Every check ends within its deadline; this bounds the wait for the last verdict whatever happens.
VERDICTS_SECONDS = 300.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _preflight(*args: str) -> str:
    completed = subprocess.run([sys.executable, "-m", "preflight", *args], capture_output=True, text=True,
                               timeout=60, check=True)  # fmt: skip
    return completed.stdout


@dataclass
class Service:
    url: str
    token: str


@contextmanager
def service(folder: Path, hosts: int, workers: int) -> Iterator[Service]:
    """`preflight serve` on a loopback port, with its own state folder and a token; stopped afterwards."""
    state = folder / f"service-{workers}"
    token = _preflight("tokens", "add", "bench", "--state", str(state)).strip()
    port = _free_port()
    log = (folder / f"service-{workers}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "preflight", "serve", "--listen", f"127.0.0.1:{port}", "--state", str(state),
         "--allow-targets", str(TARGET_NETWORK), "--limit-per-client", "1000", "--limit-per-target", "1000",
         "--max-hosts", str(hosts), "--workers", str(workers), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + START_SECONDS
        while time.monotonic() < give_up:
            if process.poll() is not None:
                raise RuntimeError(f"preflight serve exited {process.returncode}")
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"preflight serve did not answer within {START_SECONDS}s")
        yield Service(url, token)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@dataclass
class ServiceRun:
    accept_ms: list[float]
    last_verdict_seconds: float
    statuses: dict[str, dict[str, str]]


def submit_all(running: Service, addresses: list[str]) -> ServiceRun:
    """Post one check per address at once (a barrier lines up the threads), then poll until every one ends."""
    barrier = threading.Barrier(len(addresses))
    headers = {"Authorization": f"Bearer {running.token}"}

    def post(address: str) -> tuple[str, float]:
        body = {"ticket": f"BENCH-{address}", "inventory": {"hosts": [{"name": address, "product": PRODUCT,
                                                                       "address": address}]}}  # fmt: skip
        barrier.wait(timeout=REQUEST_SECONDS)
        sent = time.monotonic()
        answer = requests.post(running.url + "/api/v1/checks", json=body, headers=headers, timeout=REQUEST_SECONDS)
        took = (time.monotonic() - sent) * 1000
        if answer.status_code != 202:
            raise RuntimeError(f"{address}: {answer.status_code} {answer.text}")
        return str(answer.json()["id"]), took

    with ThreadPoolExecutor(len(addresses)) as pool:
        started = time.monotonic()
        posted = list(pool.map(post, addresses))
    pending = {check_id for check_id, _ in posted}
    statuses: dict[str, dict[str, str]] = {}
    give_up = time.monotonic() + VERDICTS_SECONDS
    with requests.Session() as session:
        while pending and time.monotonic() < give_up:
            for check_id in sorted(pending):
                state: dict[str, Any] = session.get(f"{running.url}/api/v1/checks/{check_id}", timeout=30).json()
                if state["state"] == "failed":
                    raise RuntimeError(f"check {check_id} failed: {state['error']}")
                if state["state"] == "done":
                    pending.discard(check_id)
                    statuses |= _statuses(state["report"])
            time.sleep(0.05)
    if pending:
        raise RuntimeError(f"{len(pending)} checks had no verdict within {VERDICTS_SECONDS}s")
    return ServiceRun([took for _, took in posted], time.monotonic() - started, statuses)


def refused_burst(running: Service, count: int) -> list[float]:
    """The harness's own floor: `count` posts released together that the service refuses at once (401, no token),
    so they cost only HTTP and the threads of this client: the part of an accept's time that is not the accept."""
    barrier = threading.Barrier(count)
    body = {"ticket": "BENCH", "inventory": {"hosts": []}}

    def post(_: int) -> float:
        barrier.wait(timeout=REQUEST_SECONDS)
        sent = time.monotonic()
        answer = requests.post(running.url + "/api/v1/checks", json=body, timeout=REQUEST_SECONDS,
                               headers={"Authorization": "Bearer pft_not-a-token"})  # fmt: skip
        if answer.status_code != 401:
            raise RuntimeError(f"a post without a valid token got {answer.status_code}")
        return (time.monotonic() - sent) * 1000

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(post, range(count)))


def _statuses(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {host["address"]: {check["id"]: check["status"] for check in host["checks"]} for host in report["hosts"]}


def run_local(addresses: list[str], folder: Path) -> tuple[float, dict[str, dict[str, str]]]:
    """One `preflight check` of the same hosts at its default settings: wall seconds and each check's status."""
    inventory = folder / "inventory.yaml"
    lines = ["defaults:", f"  product: {PRODUCT}", "  require_public_ip: false", "hosts:"]
    lines += [f"  - {{name: '{address}', address: {address}}}" for address in addresses]
    inventory.write_text("\n".join(lines) + "\n")
    report = folder / "local.json"
    wall, _, status = timed([sys.executable, "-m", "preflight", "check", str(inventory), "--json", str(report)],
                            folder / "local.out")  # fmt: skip
    if status not in (0, 1) or not report.exists():
        raise RuntimeError(f"preflight check exited {status}: {(folder / 'local.out').read_text()[-2000:]}")
    return wall, _statuses(json.loads(report.read_text()))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50, help="lab hosts, one API submission each (default 50)")
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 16],
                        help="service --workers values to time (default: 4, the service's default, and 16)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, taking turns; medians are printed")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: run as root (it builds a network namespace)", file=sys.stderr)
        return 2
    with scale_lab(args.hosts, seed=2020) as lab, \
            tempfile.TemporaryDirectory(prefix="pf-bench-service-") as name:  # fmt: skip
        # scale.py's lab makes some ports closed or filtered; here every port answers, so no run waits on a timeout.
        subprocess.run(["ip", "netns", "exec", lab.namespace, "nft", "delete", "table", "inet", "bench"],
                       check=True, timeout=30)  # fmt: skip
        folder = Path(name)
        local_walls: list[float] = []
        runs: dict[int, list[ServiceRun]] = {workers: [] for workers in args.workers}
        floors: list[float] = []
        local_statuses: dict[str, dict[str, str]] = {}
        for _ in range(args.repeats):
            wall, local_statuses = run_local(lab.addresses, folder)
            local_walls.append(wall)
            for workers in args.workers:
                with service(folder, args.hosts, workers) as running:
                    if workers == args.workers[0]:
                        floors.append(percentile(refused_burst(running, args.hosts), 0.95))
                    runs[workers].append(submit_all(running, lab.addresses))
        local = statistics.median(local_walls)
        print(f"\n== {args.hosts} hosts ({PRODUCT}, ports all open), {args.repeats} rounds, medians")
        print(f"local preflight check: {local:.2f} s to the report")
        print(f"{'service':22} {'accept p50 ms':>14} {'accept p95 ms':>14} {'last verdict s':>15} {'vs local':>9}  "
              "same statuses as local")  # fmt: skip
        met = True
        for workers, rounds in runs.items():
            p50 = statistics.median(percentile(run.accept_ms, 0.50) for run in rounds)
            p95 = statistics.median(percentile(run.accept_ms, 0.95) for run in rounds)
            last = statistics.median(run.last_verdict_seconds for run in rounds)
            same = sum(run.statuses == local_statuses for run in rounds)
            print(f"{f'--workers {workers}':22} {p50:14.1f} {p95:14.1f} {last:15.2f} {last / local:9.2f}  "
                  f"{same}/{len(rounds)} rounds")  # fmt: skip
            met &= p95 < ACCEPT_GOAL_MS and last <= VERDICT_GOAL_RATIO * local
        print(f"{'refused at once (401)':22} {'':14} {statistics.median(floors):14.1f}  "
              "(the floor: HTTP and this client's threads, no accept)")  # fmt: skip
        print(f"goal: accept p95 < {ACCEPT_GOAL_MS:.0f} ms and last verdict <= {VERDICT_GOAL_RATIO}x local: "
              + ("met" if met else "not met for every setting"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
