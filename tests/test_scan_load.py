"""Load must never turn an answer into `filtered`: a flooded receive queue, few file descriptors, a big lab."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.scale import PORTS, scale_lab
from preflight.portscan import scan, syn
from tests.lab import require_lab
from tests.requirements import needs_raw_sockets
from tests.scan_lab import ScanLab, lab_address, listeners, require_scan_lab, scan_lab

needs_root = needs_raw_sockets


@pytest.fixture
def loopback_truth() -> Iterator[dict[tuple[str, int], str]]:
    """Listeners on 127.0.0.1..50 for one port (open), nothing on a second port (closed): 100 endpoints."""
    listeners = []
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        closed_port = reserved.getsockname()[1]
    try:
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        first.listen(4096)
        open_port = first.getsockname()[1]
        listeners.append(first)
        for index in range(2, 51):
            listener = socket.socket()
            listener.bind((f"127.0.0.{index}", open_port))
            listener.listen(4096)
            listeners.append(listener)
        truth = {(f"127.0.0.{index}", open_port): "open" for index in range(1, 51)}
        truth |= {(f"127.0.0.{index}", closed_port): "closed" for index in range(1, 51)}
        yield truth
    finally:
        for listener in listeners:
            listener.close()


@needs_root
def test_answers_the_kernel_dropped_are_asked_again_not_called_filtered(
    loopback_truth: dict[tuple[str, int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A receive buffer of a few packets: the kernel drops most answers before the scan loop reads them.
    monkeypatch.setattr(syn, "_RECEIVE_BUFFER_BYTES", 1)
    dropped: list[int] = []
    close = syn.SynEngine.close

    def close_and_count(engine: syn.SynEngine) -> None:
        dropped.append(engine.dropped)
        close(engine)

    monkeypatch.setattr(syn.SynEngine, "close", close_and_count)

    ports = scan(list(loopback_truth), 5, "syn").ports

    assert dropped[0] > 0, "the test did not manage to overflow the receive queue"
    assert {endpoint: verdict.state for endpoint, verdict in ports.items()} == loopback_truth


OPEN_FILES_LIMIT = 300
FILES_LAB_HOSTS = 150
# Per lab address: a listener on 80 (open), nothing on 2222 (closed), 81 dropped (filtered: its sockets wait).
FILES_TRUTH = {80: "open", 2222: "closed", 81: "filtered"}
FILES_RULESET = """
table inet scanlab_files {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 81 drop
    }
}
"""
# Runs in the scanner's namespace under the small limit: the scan, and meanwhile what the rest of a preflight process
# does with files (reports, SSH, HTTP), as a thread that opens one every 2 ms and counts its failures.
FILES_SCRIPT = """
import json, os, sys, threading, time
from preflight.portscan import connect, scan
if sys.argv[1] == "unbounded":
    connect.window_for_open_files = lambda wanted: wanted
endpoints = [tuple(endpoint) for endpoint in json.load(sys.stdin)]
failures, done = [], threading.Event()
def other_work():
    while not done.is_set():
        try:
            open(os.devnull).close()
        except OSError as exc:
            failures.append(exc.errno)
        time.sleep(0.002)
worker = threading.Thread(target=other_work)
worker.start()
try:
    ports = scan(endpoints, 2, "connect").ports
finally:
    done.set()
    worker.join()
print(json.dumps({"states": [[ip, port, v.state] for (ip, port), v in ports.items()], "failures": len(failures)}))
"""


@pytest.fixture(scope="module")
def files_lab() -> Iterator[ScanLab]:
    """150 lab hosts with an open, a closed and a filtered port each: 450 distinct endpoints, more than 300 files."""
    require_scan_lab()
    with scan_lab([lab_address(index) for index in range(1, FILES_LAB_HOSTS + 1)]) as lab:
        lab.nft(FILES_RULESET)
        with listeners(lab, [80]):
            yield lab


def _scan_under_files_limit(lab: ScanLab, window: str) -> tuple[dict[tuple[str, int], str], int]:
    endpoints = [(lab_address(index), port) for index in range(1, FILES_LAB_HOSTS + 1) for port in FILES_TRUTH]
    assert len(set(endpoints)) > OPEN_FILES_LIMIT

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))

    completed = subprocess.run(
        [*lab.exec_prefix(), sys.executable, "-c", FILES_SCRIPT, window],
        input=json.dumps(endpoints), capture_output=True, text=True, timeout=120, preexec_fn=limit_files, check=True,
    )  # fmt: skip
    printed = json.loads(completed.stdout)
    return {(ip, port): state for ip, port, state in printed["states"]}, printed["failures"]


def test_connect_scan_of_more_endpoints_than_open_files_leaves_files_for_the_rest_of_the_process(
    files_lab: ScanLab,
) -> None:
    states, failures = _scan_under_files_limit(files_lab, "bounded")

    assert states == {(ip, port): FILES_TRUTH[port] for ip, port in states} and len(states) == 450
    assert failures == 0, f"the rest of the process could not open a file {failures} times during the scan"


def test_without_its_window_bound_the_connect_scan_takes_every_file_the_process_has(files_lab: ScanLab) -> None:
    """The control: the same scan, with as many sockets in flight as it wants, starves the rest of the process."""
    _, failures = _scan_under_files_limit(files_lab, "unbounded")

    assert failures > 0


@needs_root
@pytest.mark.parametrize("method", ["syn", "connect"])
def test_a_scale_lab_of_300_hosts_agrees_with_its_known_truth(method: str) -> None:
    require_lab()
    with scale_lab(300, seed=7) as lab:
        ports = scan([(ip, port) for ip in lab.addresses for port in PORTS], 10, method).ports

    assert {endpoint: verdict.state for endpoint, verdict in ports.items()} == lab.truth
    assert {verdict.method for verdict in ports.values()} == {method}
