"""Load must never turn an answer into `filtered`: a flooded receive queue, few file descriptors, a big lab."""

from __future__ import annotations

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


def test_connect_scan_stays_within_a_small_open_files_limit(loopback_truth: dict[tuple[str, int], str]) -> None:
    script = (
        "import json, sys\n"
        "from preflight.portscan import scan\n"
        "endpoints = [tuple(e) for e in json.load(sys.stdin)]\n"
        "print(json.dumps([[e[0], e[1], v.state] for e, v in scan(endpoints * 20, 5, 'connect').ports.items()]))\n"
    )
    import json

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    completed = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(list(loopback_truth)),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_files,
        check=True,
    )

    seen = {(ip, port): state for ip, port, state in json.loads(completed.stdout)}
    assert seen == loopback_truth


@needs_root
@pytest.mark.parametrize("method", ["syn", "connect"])
def test_a_scale_lab_of_300_hosts_agrees_with_its_known_truth(method: str) -> None:
    require_lab()
    with scale_lab(300, seed=7) as lab:
        ports = scan([(ip, port) for ip in lab.addresses for port in PORTS], 10, method).ports

    assert {endpoint: verdict.state for endpoint, verdict in ports.items()} == lab.truth
    assert {verdict.method for verdict in ports.values()} == {method}
