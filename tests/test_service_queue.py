"""Checks on Celery workers: two vantages in two network namespaces see a lab firewall differently; a worker
killed mid-check loses nothing; a Redis outage delays checks but loses none; Redis never holds a password."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import LabTarget, lab_target, new_secret, require_lab
from tests.lab_firewall import apply_ruleset
from tests.queue_lab import redis_server, wait_for_vantages, workers
from tests.requirements import need_root
from tests.service_process import ServiceProcess, host, running_service, silent_listener

# The two vantages' own addresses, on the lab's Docker bridge (Docker hands out addresses from .2 upwards).
EU_ADDRESS, US_ADDRESS = "172.17.250.1", "172.17.250.2"
SILENT_TARGET = "127.0.0.3"


def require_root() -> None:
    need_root("the vantage tests make network namespaces and nft rules")


def bridge_address() -> str:
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True,
                           timeout=30, check=True).stdout
    return shown.split()[3].split("/")[0]


@pytest.fixture
def vantage_namespaces() -> Iterator[dict[str, str]]:
    """Two network namespaces on the Docker bridge, one per vantage, each with its own source address."""
    require_root()
    require_lab()
    gateway = bridge_address()
    suffix = secrets.token_hex(3)
    made: list[tuple[str, str]] = []
    try:
        for vantage, address in (("eu", EU_ADDRESS), ("us", US_ADDRESS)):
            namespace, link = f"pf-{vantage}-{suffix}", f"pf{vantage}{suffix}"
            subprocess.run(["ip", "netns", "add", namespace], check=True, timeout=30)
            made.append((namespace, link))
            for command in (
                ["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace],
                ["ip", "link", "set", link, "master", "docker0", "up"],
                ["ip", "-n", namespace, "addr", "add", f"{address}/16", "dev", "eth0"],
                ["ip", "-n", namespace, "link", "set", "eth0", "up"],
                ["ip", "-n", namespace, "link", "set", "lo", "up"],
                ["ip", "-n", namespace, "route", "add", "default", "via", gateway],
            ):
                subprocess.run(command, check=True, timeout=30)
        yield {"eu": made[0][0], "us": made[1][0]}
    finally:
        for namespace, link in made:
            subprocess.run(["ip", "link", "delete", link], capture_output=True, timeout=30, check=False)
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=30, check=False)


@pytest.fixture
def firewalled_target() -> Iterator[LabTarget]:
    """A lab PBXware whose firewall lets only the eu vantage's address reach SSH on 2020."""
    require_lab()
    with lab_target(ssh_ports=(2020,)) as target:
        apply_ruleset(target, f"""
table inet preflight_vantages {{
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport 2020 ip saddr != {EU_ADDRESS} drop
  }}
}}
""")
        yield target


def test_two_vantages_see_one_firewall_differently_and_redis_keeps_no_password(
    tmp_path: Path, vantage_namespaces: dict[str, str], firewalled_target: LabTarget
) -> None:
    target = firewalled_target
    gateway = bridge_address()
    with redis_server(tmp_path / "redis", bind=("127.0.0.1", gateway)) as redis:
        args = ["--queue", redis.url(), "--allow-targets", f"{target.ip}/32", "--timeout", "5"]
        with running_service(tmp_path / "service", args) as service:
            common = ["--allow-targets", f"{target.ip}/32", "--timeout", "5"]
            specs = [
                ("eu", ["--egress-address", EU_ADDRESS], ["ip", "netns", "exec", vantage_namespaces["eu"]]),
                ("us", ["--egress-address", US_ADDRESS], ["ip", "netns", "exec", vantage_namespaces["us"]]),
            ]
            with workers(specs, redis.url(gateway), service.state, common) as started:
                wait_for_vantages(service, {"eu", "us"})
                inventory = {"hosts": [host(target.ip, name="pbx", gui_password=target.gui_password,
                                            root_password=target.root_password)]}
                answer = service.post_check({"ticket": "T-vantages", "inventory": inventory})
                assert answer.status_code == 202, answer.text
                state = service.wait_done(answer.json()["id"], seconds=180)
                remote = check_remotely(tmp_path, service, target)
                worker_logs = [worker.log() for worker in started]
            report = state["report"]
            assert state["state"] == "done", state
            assert report["schema_version"] == "2"
            assert [vantage["name"] for vantage in report["vantages"]] == ["eu", "us"]
            assert [vantage["prober"]["egress_address"] for vantage in report["vantages"]] == [EU_ADDRESS, US_ADDRESS]
            seen = {result["name"]: {check["id"]: check for check in result["checks"]}
                    for result in report["hosts"][0]["vantages"]}
            assert seen["eu"]["tcp/2020"]["evidence"]["state"] == "open"
            assert seen["eu"]["ssh-root/2020"]["status"] == "pass"
            assert seen["us"]["tcp/2020"]["evidence"]["state"] == "filtered"
            assert seen["us"]["ssh-root/2020"]["status"] == "skipped"
            assert seen["eu"]["tcp/443"]["status"] == seen["us"]["tcp/443"]["status"] == "pass"
            assert report["hosts"][0]["verdict"] == "ready from eu; NOT ready from us: tcp/2020 filtered"
            assert not report["hosts"][0]["ready"]
            assert state["progress"]["done"] == state["progress"]["total"] == len(seen["eu"]) + len(seen["us"])
            assert "eu (172.17.250.1); us (172.17.250.2)" in service.get(f"/checks/{state['id']}").text

            body = service.get(f"/api/v1/checks/{state['id']}/report.json").content
            (tmp_path / "report.json").write_bytes(body)
            (tmp_path / "report.json.sig").write_bytes(service.get(f"/api/v1/checks/{state['id']}/report.json.sig").content)
            (tmp_path / "service.pub").write_text(service.get("/api/v1/signing-key").text)
            verified = subprocess.run([sys.executable, "-m", "preflight", "verify", "report.json", "--key",
                                       "service.pub"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert verified.returncode == 0, verified.stderr
            service_log = service.log()
            # The CLI as the service's client: the same verdict, exit 1 (not ready from every vantage), and the
            # service's signed bytes written as they came.
            assert remote.returncode == 1, remote.stderr
            assert "ready from eu; NOT ready from us: tcp/2020 filtered" in remote.stdout
            client_report = json.loads((tmp_path / "remote.json").read_text())
            assert client_report["schema_version"] == "2"
            assert client_report["hosts"][0]["verdict"] == report["hosts"][0]["verdict"]
            assert "eu/tcp/2020" in (tmp_path / "remote.xml").read_text()
            checked = subprocess.run([sys.executable, "-m", "preflight", "verify", "remote.json", "--key",
                                      "service.pub"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert checked.returncode == 0, checked.stderr
        redis.cli("save")
        on_disk = {path.name: path.read_bytes() for path in redis.files()}
    assert any(state["id"].encode() in data for data in on_disk.values()), "the grep must see Redis's data"
    assert any(name.endswith(".aof") for name in on_disk) and "dump.rdb" in on_disk
    for secret in (target.root_password, target.gui_password, redis.password):
        for name, data in on_disk.items():
            assert secret.encode() not in data, name
        client_outputs = [remote.stdout, remote.stderr, *(path.read_text() for path in tmp_path.glob("remote.*"))]
        for text in (service_log, *worker_logs, json.dumps(state), *client_outputs):
            assert secret not in text


def check_remotely(folder: Path, service: ServiceProcess, target: LabTarget) -> subprocess.CompletedProcess[str]:
    inventory = folder / "inventory.yaml"
    inventory.write_text(
        "hosts:\n  - name: pbx\n    product: pbxware\n    address: " + target.ip + "\n"
        "    gui:\n      username: admin\n      password: ${GUI_PW}\n"
        "    ssh:\n      root_password: ${ROOT_PW}\n"
    )
    env = {**os.environ, "GUI_PW": target.gui_password, "ROOT_PW": target.root_password,
           "PREFLIGHT_TOKEN": service.token}
    return subprocess.run(
        [sys.executable, "-m", "preflight", "check", str(inventory), "--remote", service.url, "--ticket", "T-cli",
         "--json", "remote.json", "--html", "remote.html", "--junit", "remote.xml"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture
def silent_sshd() -> Iterator[None]:
    """A silent sshd on 2020: a check of it runs to its deadline, long enough to stop what runs it."""
    with silent_listener(SILENT_TARGET, 2020):
        yield


def loopback_queue(tmp_path: Path, redis_url: str) -> list[str]:
    return ["--queue", redis_url, "--allow-targets", "127.0.0.2/32,127.0.0.3/32", "--timeout", "6",
            "--visibility-timeout", "15"]


def worker_running(started: list, check_id: str, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        for worker in started:
            if f"task {check_id}.eu.0: vantage eu probing" in worker.log():
                return worker
        time.sleep(0.2)
    raise AssertionError("no worker started the task")


def test_a_worker_killed_mid_check_leaves_it_to_another_worker_of_its_vantage(
    tmp_path: Path, silent_sshd: None
) -> None:
    with redis_server(tmp_path / "redis") as redis, \
            running_service(tmp_path / "service", loopback_queue(tmp_path, redis.url())) as service:
        common = ["--allow-targets", "127.0.0.3/32", "--timeout", "6", "--visibility-timeout", "15",
                  "--concurrency", "1"]
        with workers([("eu", [], []), ("eu", [], [])], redis.url(), service.state, common) as started:
            wait_for_vantages(service, {"eu"})
            check_id = service.post_check({"ticket": "T-kill", "inventory": {"hosts": [host(SILENT_TARGET)]}}).json()["id"]
            first = worker_running(started, check_id)
            first.kill()
            state = service.wait_done(check_id, seconds=120)
            other = next(worker for worker in started if worker is not first)
            assert f"task {check_id}.eu.0: vantage eu probing" in other.log()
    assert state["state"] == "done", state
    ids = [(result["host"], result["vantage"], result["id"]) for result in state["results"]]
    assert len(ids) == len(set(ids)) == state["progress"]["total"], "a check was lost or reported twice"
    checks = {check["id"]: check for check in state["report"]["hosts"][0]["checks"]}
    assert checks["tcp/2020"]["evidence"]["state"] == "open"
    assert checks["service/2020"]["status"] == "fail"  # silent: no banner within its deadline
    assert state["report"]["prober"]["vantage"] == "eu"


def test_a_task_whose_workers_keep_dying_fails_with_the_reason(tmp_path: Path, silent_sshd: None) -> None:
    with redis_server(tmp_path / "redis") as redis, \
            running_service(tmp_path / "service", loopback_queue(tmp_path, redis.url())) as service:
        common = ["--allow-targets", "127.0.0.3/32", "--timeout", "6", "--visibility-timeout", "15",
                  "--concurrency", "1", "--max-deliveries", "1"]
        with workers([("eu", [], []), ("eu", [], [])], redis.url(), service.state, common) as started:
            wait_for_vantages(service, {"eu"})
            check_id = service.post_check({"ticket": "T-budget", "inventory": {"hosts": [host(SILENT_TARGET)]}}).json()["id"]
            worker_running(started, check_id).kill()
            state = service.wait_done(check_id, seconds=120)
    assert state["state"] == "failed"
    assert state["error"] == "vantage eu: gave up after 1 attempt: the worker running it was lost each time"
    assert state["report"] is None


def test_a_redis_outage_delays_checks_and_loses_none(tmp_path: Path, silent_sshd: None) -> None:
    gui, root = new_secret("gui"), new_secret("root")
    with redis_server(tmp_path / "redis") as redis, \
            running_service(tmp_path / "service", loopback_queue(tmp_path, redis.url())) as service:
        common = ["--allow-targets", "127.0.0.2/32,127.0.0.3/32", "--timeout", "6", "--visibility-timeout", "15"]
        with workers([("eu", [], [])], redis.url(), service.state, common, broker_outage=True) as started:
            wait_for_vantages(service, {"eu"})
            before = service.post_check({"ticket": "T-before", "inventory": {
                "hosts": [host("127.0.0.2", gui_password=gui, root_password=root)]}}).json()["id"]
            assert service.wait_done(before)["state"] == "done"
            in_flight = service.post_check({"ticket": "T-in-flight", "inventory": {
                "hosts": [host(SILENT_TARGET, gui_password=gui, root_password=root)]}}).json()["id"]
            worker_running(started, in_flight)
            redis.stop()
            outage_ends = time.monotonic() + 30
            during = service.post_check({"ticket": "T-during", "inventory": {
                "hosts": [host("127.0.0.2", gui_password=gui, root_password=root)]}})
            assert during.status_code == 202, during.text  # the submission waits in the database
            while time.monotonic() < outage_ends:
                # The service keeps answering: pages, the API, and the done report.
                assert service.get("/").status_code == 200
                assert service.get(f"/api/v1/checks/{before}").json()["state"] == "done"
                assert service.get(f"/api/v1/checks/{during.json()['id']}").json()["state"] in ("queued", "running")
                time.sleep(2)
            redis.start()
            for check_id in (in_flight, during.json()["id"]):
                state = service.wait_done(check_id, seconds=180)
                assert state["state"] == "done", state
                ids = [(result["host"], result["id"]) for result in state["results"]]
                assert len(ids) == len(set(ids)) == state["progress"]["total"]
            assert "the queue is unavailable" in service.log()
        redis.cli("save")
        for path in redis.files():
            for secret in (gui, root):
                assert secret.encode() not in path.read_bytes(), path.name


def test_a_check_in_many_batches_from_two_vantages_is_one_report_in_inventory_order(tmp_path: Path) -> None:
    """Batches come back in any order, from each vantage; the report is written batch by batch in inventory order
    as they do, and signed whole: every host once, each from both vantages, the counts right, nothing left over."""
    addresses = [f"127.0.0.{number}" for number in range(2, 9)]  # 7 hosts in batches of 2: 4 batches per vantage
    with silent_listener("127.0.0.5", 2020), redis_server(tmp_path / "redis") as redis:
        args = ["--queue", redis.url(), "--allow-targets", "127.0.0.0/28", "--timeout", "3", "--batch-size", "2"]
        with running_service(tmp_path / "service", args) as service:
            common = ["--allow-targets", "127.0.0.0/28", "--timeout", "3", "--concurrency", "2"]
            with workers([("eu", [], []), ("us", [], [])], redis.url(), service.state, common) as started:
                wait_for_vantages(service, {"eu", "us"})
                frozen = [process.log() for process in started] + [service.log()]
                inventory = {"hosts": [host(address, name=f"h{index}") for index, address in enumerate(addresses)]}
                answer = service.post_check({"ticket": "T-batches", "inventory": inventory, "only": ["tcp"],
                                             "vantages": ["eu", "us"]})
                assert answer.status_code == 202, answer.text
                state = service.wait_done(answer.json()["id"], seconds=180)
                body = service.get(f"/api/v1/checks/{state['id']}/report.json").content
                signature = service.get(f"/api/v1/checks/{state['id']}/report.json.sig").content
                key = service.get("/api/v1/signing-key").text
                batches = service.log().count(f"check {state['id']}: 4 batch(es) to eu, us")
            reports = service.state / "reports"
            left_over = [path.name for path in reports.iterdir()] if reports.exists() else []
    assert state["state"] == "done", state
    assert batches == 1
    # The service and each worker left what they made at start out of the collector's passes (preflight.service.heap).
    assert all(re.search(r"\b[1-9][0-9]{3,} objects made at start are left out of garbage collection", log)
               for log in frozen), frozen
    report = json.loads(body)
    assert report["schema_version"] == "2"
    assert [entry["name"] for entry in report["hosts"]] == [f"h{index}" for index in range(len(addresses))]
    assert [entry["address"] for entry in report["hosts"]] == addresses
    for entry in report["hosts"]:
        assert [result["name"] for result in entry["vantages"]] == ["eu", "us"]
        for result in entry["vantages"]:
            assert [check["id"] for check in result["checks"]] == ["tcp/80", "tcp/81", "tcp/443", "tcp/2020"]
    # The one open port (the listener), from both vantages; the control: the others are closed from both.
    opened = {(entry["name"], result["name"], check["id"]) for entry in report["hosts"] for result in entry["vantages"]
              for check in result["checks"] if check["evidence"]["state"] == "open"}  # fmt: skip
    assert opened == {("h3", "eu", "tcp/2020"), ("h3", "us", "tcp/2020")}
    assert report["summary"] == {"hosts": 7, "ready": 0, "not_ready": 7}
    assert [vantage["summary"]["hosts"] for vantage in report["vantages"]] == [7, 7]
    assert state["progress"]["done"] == state["progress"]["total"] == 7 * 4 * 2
    # The bytes served are the bytes signed.
    (tmp_path / "report.json").write_bytes(body)
    (tmp_path / "report.json.sig").write_bytes(signature)
    (tmp_path / "service.pub").write_text(key)
    verified = subprocess.run([sys.executable, "-m", "preflight", "verify", "report.json", "--key", "service.pub"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stderr
    assert not [name for name in left_over if name.endswith(".tmp")]
