"""Refused targets, asked of a real `preflight serve` that runs where a broken refusal still could not reach them.

The service runs in a network namespace of its own with loopback and two lab addresses on it (198.18.77.10, the
one target it is allowed, and 198.18.77.1, one of its own addresses it is not), and no route anywhere else. An
nftables counter in that namespace counts every packet other than the test's requests to the service and the
allowed lab address. After every refusal, the service has recorded no probe and that counter is still zero; the
allowed target, asked the same way, is accepted, probed and counted.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.requirements import need
from tests.service_process import ServiceProcess, host, running_service

LAB = "198.18.77.10"
OWN = "198.18.77.1"
PORT = 8080
METADATA_NAME = "metadata.lab.test"
CLONE_NEWNET = 0x40000000
PUBLIC_ONLY = ": this service checks only public addresses"
NFT_AUDIT = f"""
table inet preflight_audit {{
    counter lab {{ }}
    counter other {{ }}
    chain out {{
        type filter hook output priority 0; policy accept;
        ip daddr 127.0.0.1 tcp dport {PORT} accept
        ip saddr 127.0.0.1 tcp sport {PORT} accept
        ip daddr {LAB} counter name lab accept
        counter name other
    }}
}}
"""

REFUSED = [
    ("127.0.0.1", f"127.0.0.1 is loopback{PUBLIC_ONLY}"),
    ("::1", f"::1 is loopback{PUBLIC_ONLY}"),
    ("10.0.0.1", f"10.0.0.1 is private (RFC 1918){PUBLIC_ONLY}"),
    ("172.16.0.1", f"172.16.0.1 is private (RFC 1918){PUBLIC_ONLY}"),
    ("192.168.1.1", f"192.168.1.1 is private (RFC 1918){PUBLIC_ONLY}"),
    ("100.64.0.1", f"100.64.0.1 is carrier-grade NAT (RFC 6598){PUBLIC_ONLY}"),
    ("169.254.169.254", f"169.254.169.254 is link-local{PUBLIC_ONLY}"),
    ("fe80::1", f"fe80::1 is link-local{PUBLIC_ONLY}"),
    ("fd00::1", f"fd00::1 is unique-local (IPv6){PUBLIC_ONLY}"),
    ("224.0.0.1", f"224.0.0.1 is multicast{PUBLIC_ONLY}"),
    ("ff02::1", f"ff02::1 is multicast{PUBLIC_ONLY}"),
    ("::ffff:127.0.0.1", f"::ffff:127.0.0.1 is IPv4-mapped 127.0.0.1, loopback{PUBLIC_ONLY}"),
    ("::ffff:169.254.169.254", f"::ffff:169.254.169.254 is IPv4-mapped 169.254.169.254, link-local{PUBLIC_ONLY}"),
    (f"::ffff:{LAB}", f"::ffff:{LAB} is IPv4-mapped {LAB}, benchmarking{PUBLIC_ONLY}"),
    ("2130706433", "2130706433 is another way of writing the IPv4 address 127.0.0.1; write it as 127.0.0.1"),
    ("0x7f.1", "0x7f.1 is another way of writing the IPv4 address 127.0.0.1; write it as 127.0.0.1"),
    ("017700000001", "017700000001 is another way of writing the IPv4 address 127.0.0.1; write it as 127.0.0.1"),
    ("127.1", "127.1 is another way of writing the IPv4 address 127.0.0.1; write it as 127.0.0.1"),
    (OWN, f"{OWN} is benchmarking{PUBLIC_ONLY}"),
    ("localhost", f"localhost resolves to 127.0.0.1, which is loopback{PUBLIC_ONLY}"),
    (METADATA_NAME, f"{METADATA_NAME} resolves to 169.254.169.254, which is link-local{PUBLIC_ONLY}"),
]


def namespace_unavailable_reason() -> str | None:
    """Why a network namespace with nftables cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "the namespace refusal tests need root (ip netns add, nft in the namespace)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"the namespace refusal tests need {tool} ({package})"
    return None


@pytest.fixture(scope="module", autouse=True)
def _root_and_tools() -> None:
    reason = namespace_unavailable_reason()
    need(reason is None, reason or "")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass(frozen=True)
class Namespace:
    name: str

    def counter(self, name: str) -> int:
        listed = subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-j", "list", "counter", "inet", "preflight_audit", name],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout
        found = [item["counter"] for item in json.loads(listed)["nftables"] if "counter" in item]
        return int(found[0]["packets"])


@contextlib.contextmanager
def lab_namespace() -> Iterator[Namespace]:
    """A namespace with only loopback up, the two lab addresses on it, a lab hosts file and the packet counter."""
    name = f"pfsvc-{secrets.token_hex(4)}"
    etc = Path("/etc/netns") / name
    ip("netns", "add", name)
    try:
        # `ip netns exec` binds each file here over its /etc namesake: the lab's names, and no DNS server to ask.
        etc.mkdir(parents=True)
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n169.254.169.254 {METADATA_NAME}\n")
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        (etc / "nsswitch.conf").write_text("hosts: files dns\n")
        ip("-n", name, "link", "set", "lo", "up")
        for address in (LAB, OWN):
            ip("-n", name, "address", "add", f"{address}/32", "dev", "lo")
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=NFT_AUDIT, check=True,
                       capture_output=True, text=True, timeout=30)
        routes = subprocess.run(["ip", "-n", name, "route", "show", "table", "all"], check=True,
                                capture_output=True, text=True, timeout=30).stdout
        assert "default" not in routes, routes
        yield Namespace(name)
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        with contextlib.suppress(OSError):
            etc.parent.rmdir()  # only when empty: another namespace's files stay
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def inside(namespace: Namespace) -> Iterator[None]:
    """This thread's sockets in `namespace` (setns), so the test's own HTTP requests reach the service in it."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace.name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the lab namespace")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
    finally:
        os.close(target)
        os.close(home)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, Namespace]]:
    with lab_namespace() as namespace, inside(namespace):
        state = tmp_path_factory.mktemp("netns-service")
        args = ["--allow-targets", f"{LAB}/32", "--limit-per-client", "1000", "--timeout", "3"]
        with running_service(state, args, prefix=["ip", "netns", "exec", namespace.name], port=PORT) as running:
            yield running, namespace


@pytest.mark.parametrize(("target", "reason"), REFUSED)
def test_refused_target_is_422_with_one_line_and_sends_nothing(
    service: tuple[ServiceProcess, Namespace], target: str, reason: str
) -> None:
    running, namespace = service
    answer = running.post_check({"ticket": "T-refused", "inventory": {"hosts": [host(target)]}})

    assert answer.status_code == 422, answer.text
    assert answer.json() == {"error": f"hosts[0].address: {reason}"}
    assert running.probed() == []
    assert namespace.counter("other") == 0
    assert namespace.counter("lab") == 0


def test_allowed_lab_address_is_accepted_probed_and_counted(service: tuple[ServiceProcess, Namespace]) -> None:
    """The control: the same service, asked the same way, probes the one address it is allowed, and only it."""
    running, namespace = service
    answer = running.post_check({"ticket": "T-allowed", "inventory": {"hosts": [host(LAB)]}})

    assert answer.status_code == 202, answer.text
    state = running.wait_done(answer.json()["id"])
    assert state["state"] == "done", state
    report = state["report"]
    tcp = [check for check in report["hosts"][0]["checks"] if check["id"].startswith("tcp/")]
    assert tcp and all(check["status"] == "fail" for check in tcp), tcp
    assert running.probed() == [LAB]
    assert namespace.counter("lab") > 0
    assert namespace.counter("other") == 0


def test_audit_counter_sees_a_packet_to_loopback(service: tuple[ServiceProcess, Namespace]) -> None:
    """The counter's own control: a connect to a closed loopback port in the namespace is counted."""
    _, namespace = service
    before = namespace.counter("other")
    with socket.socket() as probe:
        probe.settimeout(3)
        assert probe.connect_ex(("127.0.0.1", 9)) != 0

    assert namespace.counter("other") > before
