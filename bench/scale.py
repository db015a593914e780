"""Reachability at scale: preflight against nmap -sT (-T4, and -T5 without retries) and -sS, on N lab hosts.

The lab is one network namespace behind a veth pair. It holds N addresses from the benchmarking range
198.19.0.0/16 on its loopback (past 65,280 hosts, also from 198.18.1.0 up in 198.18.0.0/16), one
accept-and-close listener per port with a deep backlog, and nftables sets that make a known mix of closed
(TCP reset) and filtered (dropped) ports. Traffic goes nowhere else.
Run as root: see bench/README.md.
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import measured

PORTS = (80, 81, 443, 2020, 2222)
STATE_WEIGHTS = {"open": 0.5, "closed": 0.25, "filtered": 0.25}
HOST_SIDE, LAB_SIDE = "198.18.0.1", "198.18.0.2"
TARGET_NETWORK = ipaddress.IPv4Network("198.19.0.0/16")
# Past TARGET_NETWORK's addresses the lab goes on in 198.18.0.0/16, above the veth pair's 198.18.0.0/30; both /16s
# together are the benchmarking range 198.18.0.0/15, which names no one else's network.
EXTRA_NETWORK = ipaddress.IPv4Network("198.18.0.0/16")
FIRST_HOST_INDEX = 256
HOSTS_PER_NETWORK = TARGET_NETWORK.num_addresses - FIRST_HOST_INDEX
MAX_HOSTS = 2 * HOSTS_PER_NETWORK
LISTENER_LIFETIME_SECONDS = 3600
# preflight's reachability phase: everything before the logins.
REACHABILITY_CHECKS = "public-ip,vantage,tcp"
BENCH = Path(__file__).resolve().parent
LOCK_FILE = "/run/lock/preflight-scale-lab.lock"

Endpoint = tuple[str, int]


def _ip(*args: str, stdin: str | None = None, timeout: float = 120) -> None:
    subprocess.run(["ip", *args], input=stdin, text=True, check=True, capture_output=True, timeout=timeout)


@dataclass
class ScaleLab:
    namespace: str
    addresses: list[str]
    truth: dict[Endpoint, str]


def known_truth(hosts: int, seed: int) -> tuple[list[str], dict[Endpoint, str]]:
    """N target addresses and, for each of their ports, the state the lab gives it."""
    chooser = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    if not 0 < hosts <= MAX_HOSTS:
        raise ValueError(f"the lab holds 1 to {MAX_HOSTS} hosts, not {hosts}")
    addresses = [_address(index) for index in range(hosts)]
    states = list(STATE_WEIGHTS)
    weights = list(STATE_WEIGHTS.values())
    truth = {(ip, port): chooser.choices(states, weights)[0] for ip in addresses for port in PORTS}
    return addresses, truth


def _address(index: int) -> str:
    # The first 65,280 addresses are those the lab always had, so a seed gives the same truth at every size.
    if index < HOSTS_PER_NETWORK:
        return str(TARGET_NETWORK[FIRST_HOST_INDEX + index])
    return str(EXTRA_NETWORK[FIRST_HOST_INDEX + index - HOSTS_PER_NETWORK])


def _lab_addresses(addresses: Sequence[str]) -> list[str]:
    """`ip` commands that make the lab's addresses its own."""
    if len(addresses) <= HOSTS_PER_NETWORK:
        return [f"addr add {address}/32 dev lo" for address in addresses]
    # lo takes addresses more slowly the more it holds (40,000 took three minutes here), so a lab past one /16 makes
    # its whole ranges local at once instead (AnyIP: a local route). The listener on 0.0.0.0 answers either the same.
    veth = ipaddress.IPv4Network(f"{HOST_SIDE}/24", strict=False)
    blocks = [TARGET_NETWORK, *sorted(EXTRA_NETWORK.address_exclude(veth))]
    return [f"route add local {block} dev lo" for block in blocks]


def networks_for(hosts: int) -> list[ipaddress.IPv4Network]:
    """The /16s a lab of `hosts` addresses routes into its namespace."""
    return [TARGET_NETWORK] if hosts <= HOSTS_PER_NETWORK else [TARGET_NETWORK, EXTRA_NETWORK]


def _nft_ruleset(truth: Mapping[Endpoint, str]) -> str:
    def elements(state: str) -> str:
        return ", ".join(f"{ip} . {port}" for (ip, port), known in truth.items() if known == state) or ""

    def set_block(name: str) -> str:
        body = elements(name)
        listed = f"elements = {{ {body} }}" if body else ""
        return f"set {name} {{ type ipv4_addr . inet_service; {listed} }}"

    return f"""
table inet bench {{
    {set_block("closed")}
    {set_block("filtered")}
    chain input {{
        type filter hook input priority 0; policy accept;
        ip daddr . tcp dport @filtered drop
        ip daddr . tcp dport @closed reject with tcp reset
    }}
}}
"""


@contextmanager
def scale_lab(hosts: int, seed: int) -> Iterator[ScaleLab]:
    """Build the namespace, its addresses, firewall and listeners; tear all of it down afterwards."""
    namespace = f"pfbench-{secrets.token_hex(3)}"
    host_link, lab_link = f"pfb{namespace[-6:]}h", f"pfb{namespace[-6:]}l"
    addresses, truth = known_truth(hosts, seed)
    listener = None
    routed: list[ipaddress.IPv4Network] = []
    # One scale lab at a time on this machine: they share the host-side address and the route to the range.
    lock = open(LOCK_FILE, "a")  # noqa: SIM115 - held until the lab is torn down
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", host_link, "type", "veth", "peer", "name", lab_link)
        _ip("link", "set", lab_link, "netns", namespace)
        _ip("addr", "add", f"{HOST_SIDE}/30", "dev", host_link)
        _ip("link", "set", host_link, "up")
        batch = [
            f"addr add {LAB_SIDE}/30 dev {lab_link}",
            f"link set {lab_link} up",
            "link set lo up",
            f"route add default via {HOST_SIDE}",
            *_lab_addresses(addresses),
        ]
        _ip("-n", namespace, "-batch", "-", stdin="\n".join(batch) + "\n", timeout=120 + hosts / 100)
        routed = networks_for(hosts)
        for network in routed:
            # 198.18.0.0/16 spans the veth pair's own /30, whose connected route is more specific and still wins.
            _ip("route", "add", str(network), "via", LAB_SIDE)
        for setting in ("net.core.somaxconn=65535", "net.ipv4.tcp_max_syn_backlog=65535"):
            subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", setting], check=True, timeout=30)
        subprocess.run(
            ["ip", "netns", "exec", namespace, "nft", "-f", "-"],
            input=_nft_ruleset(truth),
            text=True,
            check=True,
            timeout=120 + hosts / 100,
        )
        listener = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(BENCH / "listener.py"),
             str(LISTENER_LIFETIME_SECONDS), *map(str, PORTS)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert listener.stdout is not None
        if listener.stdout.readline().strip() != "ready":
            raise RuntimeError("the bench listener did not start")
        yield ScaleLab(namespace, addresses, truth)
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=30)
        for network in routed:
            subprocess.run(["ip", "route", "del", str(network)], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", host_link], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
        lock.close()


@dataclass
class Measured:
    tool: str
    wall_seconds: float
    peak_rss_mb: float
    states: dict[Endpoint, str]
    note: str = ""
    cpu_seconds: float = 0.0


def run_preflight(
    lab: ScaleLab, workdir: Path, extra: Sequence[str] = (), checks: str = REACHABILITY_CHECKS
) -> Measured:
    inventory = workdir / "inventory.yaml"
    write_inventory(lab, inventory)
    report = workdir / "preflight.json"
    command = [sys.executable, "-m", "preflight", "check", str(inventory), "--only", checks,
               "--json", str(report), *extra]  # fmt: skip
    usage = measured(command, workdir / "preflight.out")
    if usage.status not in (0, 1):
        raise RuntimeError(f"preflight exited {usage.status}: {(workdir / 'preflight.out').read_text()[-2000:]}")
    states: dict[Endpoint, str] = {}
    methods: set[str] = set()
    for host in iter_report_hosts(report):
        for check in host["checks"]:
            if check["id"].startswith("tcp/"):
                states[(host["address"], check["evidence"]["port"])] = check["evidence"]["state"]
                methods.add(check["evidence"]["method"])
    label = " ".join(["preflight", *extra]) if extra else "preflight (defaults)"
    note = f"--only {checks}, method {', '.join(sorted(methods))}"
    return Measured(label, usage.wall_seconds, usage.peak_rss_mb, states, note, usage.cpu_seconds)


def write_inventory(lab: ScaleLab, path: Path) -> None:
    """An inventory of the lab's hosts, h0, h1, ..., in address order."""
    with path.open("w") as out:
        out.write("defaults:\n  product: serverware\n  require_public_ip: false\nhosts:\n")
        for index, ip in enumerate(lab.addresses):
            out.write(f"  - {{name: h{index}, address: {ip}}}\n")


def iter_report_hosts(path: Path) -> Iterator[dict[str, Any]]:
    """The hosts of a JSON report one at a time, so a report of 100,000 hosts is never whole in the bench's memory.

    preflight writes each host on one line at four spaces (before, indented two spaces a level, each host opening and
    closing at four, as bench/memory.py's older trees wrote it); JSON strings hold no raw newline, so no line inside
    a host looks like its end.
    """
    block: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not block and line.startswith("    {") and line.rstrip(",\n").endswith("}"):
                yield json.loads(line.rstrip().rstrip(","))
                continue
            if block or line.rstrip("\n") == "    {":
                block.append(line)
            if block and line.rstrip(",\n") == "    }":
                yield json.loads("".join(block).rstrip().rstrip(","))
                block = []


def run_nmap(lab: ScaleLab, workdir: Path, scan_type: str, timing: Sequence[str] = ("-T4",)) -> Measured:
    targets = workdir / "targets.txt"
    targets.write_text("\n".join(lab.addresses) + "\n")
    xml_path = workdir / f"nmap{scan_type}{''.join(timing)}.xml"
    command = ["nmap", "-n", "-Pn", scan_type, *timing, "-p", ",".join(map(str, PORTS)), "-iL", str(targets),
               "-oX", str(xml_path)]  # fmt: skip
    usage = measured(command, workdir / f"nmap{scan_type}.out")
    if usage.status != 0:
        raise RuntimeError(f"nmap exited {usage.status}")
    states: dict[Endpoint, str] = {}
    for host in ET.parse(xml_path).getroot().iter("host"):  # noqa: S314 - nmap's XML from this run
        address = host.find("address")
        ports = host.find("ports")
        if address is None or ports is None:
            continue
        ip = address.get("addr", "")
        default = next((extra.get("state", "") for extra in ports.iter("extraports")), "")
        listed = {int(port.get("portid", "0")): port.find("state") for port in ports.iter("port")}
        for port in PORTS:
            state = listed.get(port)
            states[(ip, port)] = state.get("state", "") if state is not None else default
    label = " ".join(["nmap -n -Pn", scan_type, *timing])
    return Measured(label, usage.wall_seconds, usage.peak_rss_mb, states, cpu_seconds=usage.cpu_seconds)


def agreement(measured: Measured, truth: Mapping[Endpoint, str]) -> tuple[int, list[str]]:
    wrong = [
        f"{ip}:{port} is {known}, {measured.tool} said {measured.states.get((ip, port), 'nothing')}"
        for (ip, port), known in truth.items()
        if measured.states.get((ip, port)) != known
    ]
    return len(truth) - len(wrong), wrong


def median_run(measured: Sequence[Measured], truth: Mapping[Endpoint, str]) -> Measured:
    """One tool's rounds as one row: median wall and CPU, the largest RSS, and the states of its worst round."""
    worst = min(measured, key=lambda run: agreement(run, truth)[0])
    return Measured(
        worst.tool,
        statistics.median(run.wall_seconds for run in measured),
        max(run.peak_rss_mb for run in measured),
        worst.states,
        worst.note,
        statistics.median(run.cpu_seconds for run in measured),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000], help="lab sizes to run (default 1000)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--no-nmap", action="store_true", help="time preflight only")
    parser.add_argument("--connect", action="store_true", help="also time preflight --tcp-method connect")
    parser.add_argument(
        "--only",
        default=REACHABILITY_CHECKS,
        metavar="KINDS",
        help=f"preflight's checks (default {REACHABILITY_CHECKS}; the CPU goal uses tcp)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run preflight and nmap -T5 this many times, taking turns, and show medians (the machine is noisy)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: run as root (it builds a network namespace)", file=sys.stderr)
        return 2
    failed = False
    for hosts in args.hosts:
        with scale_lab(hosts, args.seed) as lab, tempfile.TemporaryDirectory(prefix="pf-bench-") as folder:
            workdir = Path(folder)
            counts = {state: sum(1 for known in lab.truth.values() if known == state) for state in STATE_WEIGHTS}
            print(f"\n== {hosts} hosts x {len(PORTS)} ports = {len(lab.truth)} endpoints; truth: "
                  + ", ".join(f"{count} {state}" for state, count in counts.items()))  # fmt: skip
            rounds: list[list[Measured]] = []
            for _ in range(max(1, args.rounds)):
                turn = [run_preflight(lab, workdir, checks=args.only)]
                if args.connect:
                    turn.append(run_preflight(lab, workdir, ["--tcp-method", "connect"], checks=args.only))
                if not args.no_nmap:
                    # nmap at its fastest: no retry, so its silence is one probe's (preflight always retries once).
                    turn.append(run_nmap(lab, workdir, "-sT", ("-T5", "--max-retries", "0")))
                rounds.append(turn)
            runs = [median_run([turn[index] for turn in rounds], lab.truth) for index in range(len(rounds[0]))]
            if not args.no_nmap:
                runs += [run_nmap(lab, workdir, "-sT"), run_nmap(lab, workdir, "-sS")]
            if args.rounds > 1:
                print(f"(preflight and nmap -T5: medians of {args.rounds} rounds taken in turns; the rest: one run)")
            reference = next((run for run in runs if run.tool == "nmap -n -Pn -sT -T4"), None)
            fastest = next((run for run in runs if run.tool.startswith("nmap -n -Pn -sT -T5")), None)
            print(f"{'tool':44} {'wall s':>7} {'vs -sT':>7} {'vs -T5':>7} {'CPU s':>6} {'RSS MB':>7}  agreement")
            for run in runs:
                agreed, wrong = agreement(run, lab.truth)
                ratio = f"{run.wall_seconds / reference.wall_seconds:.2f}" if reference else "-"
                to_fastest = f"{run.wall_seconds / fastest.wall_seconds:.2f}" if fastest else "-"
                print(f"{run.tool:44} {run.wall_seconds:7.2f} {ratio:>7} {to_fastest:>7} {run.cpu_seconds:6.2f} "
                      f"{run.peak_rss_mb:7.1f}  {100 * agreed / len(lab.truth):.2f}% ({agreed}/{len(lab.truth)}) "
                      f"{run.note}")  # fmt: skip
                for line in wrong[:5]:
                    print(f"    {line}")
                failed |= bool(wrong) and run.tool.startswith("preflight")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
