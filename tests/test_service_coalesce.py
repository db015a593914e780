"""`preflight serve` runs the checks waiting together as one plan and gives each check its own report: two checks
with the same host name at different loopback addresses, each answered by different listeners."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab import new_secret
from tests.service_process import ServiceProcess, host, running_service

# Loopback addresses of this test alone (127.0.0.2 and .3 are the other service tests'): the two checks' targets,
# and a silent SSH server that holds the only worker while both are queued, so they are claimed together.
FIRST, SECOND, BLOCKER = "127.0.0.12", "127.0.0.13", "127.0.0.14"
FIRST_OPEN, SECOND_OPEN = 80, 2020
ANSWER_WAIT_SECONDS = 0.5


@pytest.fixture
def listeners() -> Iterator[None]:
    """FIRST answers on port 80 only, SECOND on 2020 only; BLOCKER accepts on 2020 and never says a word.

    The answering ones read what the client sends (a moment), answer a request with an empty HTTP 200 and close: a
    report then reads the same in every run (an unread request would make the close a reset, or not, by timing).
    """
    servers = []
    for address, port in ((FIRST, FIRST_OPEN), (SECOND, SECOND_OPEN), (BLOCKER, 2020)):
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        server.listen(16)
        server.settimeout(0.2)
        servers.append((server, address == BLOCKER))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve(server: socket.socket, silent: bool) -> None:
        while not stop.is_set():
            try:
                connection = server.accept()[0]
            except TimeoutError:
                continue
            except OSError:
                return
            if silent:
                held.append(connection)
                continue
            with connection:
                connection.settimeout(ANSWER_WAIT_SECONDS)
                try:
                    if connection.recv(4096):
                        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    threads = [threading.Thread(target=serve, args=pair, daemon=True) for pair in servers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        for server, _ in servers:
            server.close()
        for connection in held:
            connection.close()


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    (only_host,) = report["hosts"]
    return {check["id"]: check["status"] for check in only_host["checks"]}


def _wait_running(service: ServiceProcess, check_id: str) -> None:
    give_up = time.monotonic() + 30
    while service.get(f"/api/v1/checks/{check_id}").json()["state"] != "running" and time.monotonic() < give_up:
        time.sleep(0.05)
    assert service.get(f"/api/v1/checks/{check_id}").json()["state"] == "running"


def test_checks_run_together_each_get_the_report_of_their_own_hosts(tmp_path: Any, listeners: None) -> None:
    args = ["--allow-targets", f"{FIRST}/32,{SECOND}/32,{BLOCKER}/32", "--timeout", "3", "--workers", "1"]
    with running_service(tmp_path, args) as service:
        blocker = service.post_check({"ticket": "T-hold", "inventory": {
            "hosts": [host(BLOCKER, name="pbx", root_password=new_secret("root"))]}}).json()["id"]
        _wait_running(service, blocker)
        # Both queued while the only worker waits on the silent server: it then takes them in one run.
        first = service.post_check({"ticket": "T-1", "inventory": {"hosts": [host(FIRST, name="pbx")]}}).json()["id"]
        second = service.post_check({"ticket": "T-2", "inventory": {"hosts": [host(SECOND, name="pbx")]}}).json()["id"]
        states = {check_id: service.wait_done(check_id) for check_id in (blocker, first, second)}
        together = [line for line in service.log().splitlines() if "as one plan" in line]
        assert any(first in line and second in line for line in together), together

        # Alone, after the others: the report that each check's own run makes.
        alone = service.wait_done(service.post_check(
            {"ticket": "T-1", "inventory": {"hosts": [host(FIRST, name="pbx")]}}).json()["id"])  # fmt: skip

    for check_id, address, open_port, closed_port in ((first, FIRST, FIRST_OPEN, SECOND_OPEN),
                                                      (second, SECOND, SECOND_OPEN, FIRST_OPEN)):  # fmt: skip
        state = states[check_id]
        assert state["state"] == "done", state["error"]
        report = state["report"]
        (reported,) = report["hosts"]
        assert (reported["name"], reported["address"], reported["ip"]) == ("pbx", address, address)
        statuses = _statuses(report)
        assert statuses[f"tcp/{open_port}"] == "pass"
        assert statuses[f"tcp/{closed_port}"] == "fail"
        # Progress was recorded under the check's own host name, one result per check of its report.
        assert [result["host"] for result in state["results"]] == ["pbx"] * len(statuses)
        assert sorted(result["id"] for result in state["results"]) == sorted(statuses)
        assert state["progress"] == {"done": len(statuses), "total": len(statuses)}
        # Nothing of the other check: its address is nowhere in this report.
        other = SECOND if address == FIRST else FIRST
        assert other not in json.dumps(report)

    assert states[first]["report"]["inventory_sha256"] != states[second]["report"]["inventory_sha256"]
    assert states[first]["report"]["inventory_sha256"] == alone["report"]["inventory_sha256"]
    assert _statuses(states[first]["report"]) == _statuses(alone["report"])
    assert without_timings(states[first]["report"]) == without_timings(alone["report"])


TIMINGS = frozenset({"started_at", "finished_at", "duration_ms", "rtt_ms", "retry_after_ms"})


def without_timings(value: Any) -> Any:
    """A report with what differs from run to run taken out: when it ran, and how long each check and probe took."""
    if isinstance(value, dict):
        return {key: without_timings(child) for key, child in value.items() if key not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(child) for child in value]
    if isinstance(value, str):
        return re.sub(r"\d+(\.\d+)? ?ms\b", "N ms", value)
    return value
