"""A two-namespace lab for the scanner's promises: a scanner namespace and a lab namespace joined by a veth pair.

Nothing of it touches the machine's own namespace: the scanner's raw sockets see only the lab's packets, so no
other traffic on the machine can fill their queues. Lab hosts are addresses on the lab's loopback; their ports are
answered by the lab kernel (listeners, resets, nftables drops) or, when a test needs control over every answer, by a
userspace responder (`python -m tests.scan_lab`) with the lab kernel's own TCP replies dropped by nftables. The
responder can answer late, ignore a first SYN, and send spoofed replies; it logs every SYN it sees with the
kernel's receive time.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

SCANNER_IP, LAB_GATEWAY = "198.18.60.1", "198.18.60.2"
LAB_NETWORK = "198.18.61.0/24"
CLONE_NEWNET = 0x40000000
# The responder's own packets carry this mark, so the lab's nftables can drop only the kernel's replies.
RESPONDER_MARK = 0x5046
RESPONDER_LIFETIME_SECONDS = 120.0
REPO = Path(__file__).resolve().parent.parent
_SO_MARK = 36
_SO_TIMESTAMPNS = 35
_SYN, _RST, _ACK = 0x02, 0x04, 0x10

T = TypeVar("T")


def lab_address(index: int) -> str:
    """The lab's `index`-th host address (1-254)."""
    return f"198.18.61.{index}"


def require_scan_lab() -> None:
    """Root, iproute2 and nftables: skipped without them on a developer machine, failed without them in CI."""
    from tests.requirements import need_root, need_tool

    need_root("the scan lab builds network namespaces and uses raw sockets and nftables")
    need_tool("ip", "iproute2")
    need_tool("nft", "nftables")


def _ip(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["ip", *args], input=stdin, text=True, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class ScanLab:
    scanner: str
    lab: str
    addresses: tuple[str, ...]

    def exec_prefix(self, namespace: str | None = None) -> list[str]:
        """The command prefix that runs a program in the scanner's namespace (or `namespace`)."""
        return ["ip", "netns", "exec", namespace or self.scanner]

    def nft(self, ruleset: str, namespace: str | None = None) -> None:
        """Load `ruleset` into the lab's namespace (or `namespace`)."""
        loaded = subprocess.run(
            [*self.exec_prefix(namespace or self.lab), "nft", "-f", "-"],
            input=ruleset, text=True, capture_output=True, timeout=60,
        )  # fmt: skip
        if loaded.returncode != 0:
            raise RuntimeError(f"nft refused the lab's ruleset: {loaded.stderr.strip()}")


@contextlib.contextmanager
def scan_lab(addresses: Sequence[str]) -> Iterator[ScanLab]:
    """Build the scanner and lab namespaces, the link between them and the lab's host addresses; remove all after."""
    tag = secrets.token_hex(3)
    scanner, lab = f"pfscan-s-{tag}", f"pfscan-l-{tag}"
    scanner_link, lab_link = f"pfs{tag}s", f"pfs{tag}l"
    try:
        _ip("netns", "add", scanner)
        _ip("netns", "add", lab)
        _ip("-n", scanner, "link", "add", scanner_link, "type", "veth", "peer", "name", lab_link, "netns", lab)
        _ip("-n", scanner, "-batch", "-", stdin="\n".join([
            f"addr add {SCANNER_IP}/24 dev {scanner_link}",
            f"link set {scanner_link} up",
            "link set lo up",
            f"route add {LAB_NETWORK} via {LAB_GATEWAY}",
        ]) + "\n")  # fmt: skip
        batch = [f"addr add {LAB_GATEWAY}/24 dev {lab_link}", f"link set {lab_link} up", "link set lo up"]
        batch += [f"addr add {address}/32 dev lo" for address in addresses]
        _ip("-n", lab, "-batch", "-", stdin="\n".join(batch) + "\n")
        for setting in ("net.core.somaxconn=65535", "net.ipv4.tcp_max_syn_backlog=65535"):
            subprocess.run(["ip", "netns", "exec", lab, "sysctl", "-q", "-w", setting], check=True, timeout=30)
        yield ScanLab(scanner, lab, tuple(addresses))
    finally:
        # Deleting a namespace deletes the veth end in it, and with it the peer.
        for namespace in (lab, scanner):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=60, check=False)


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """This thread's new sockets in `namespace` (setns); the rest of the process stays where it is."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
    finally:
        os.close(target)
        os.close(home)


def run_inside(namespace: str, work: Callable[[], T], timeout: float = 120.0) -> T:
    """`work()` run in a thread of its own inside `namespace`; its result or its exception."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            with inside(namespace):
                outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=body, name=f"in-{namespace}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"work in {namespace} did not end within {timeout:g}s")
    if failure:
        raise failure[0]
    return outcome[0]


@contextlib.contextmanager
def listeners(lab: ScanLab, ports: Sequence[int]) -> Iterator[None]:
    """Accept-and-close listeners on every lab address for `ports`, with deep backlogs (bench/listener.py)."""
    process = subprocess.Popen(
        [*lab.exec_prefix(lab.lab), sys.executable, str(REPO / "bench" / "listener.py"), "300", *map(str, ports)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the lab listener did not start")
        yield
    finally:
        process.kill()
        process.wait(timeout=30)


# --- the responder ----------------------------------------------------------------------------------------------

RESPONDER_RULESET = f"""
table inet scanlab_responder {{
    chain output {{
        type filter hook output priority 0; policy accept;
        meta mark {RESPONDER_MARK:#x} accept
        meta l4proto tcp drop
    }}
}}
"""


@dataclass(frozen=True)
class Rule:
    """How the responder treats SYNs to one endpoint."""

    answer: str | None = None  # "syn-ack", "reset" or None (silence: filtered)
    delay: float = 0.0  # seconds after the SYN arrived
    ignore_first: bool = False  # no answer to the first SYN, as if it were lost
    spoof: str | None = None  # "wrong": stray and spoofed replies; "right-syn-ack", "right-reset", "right-icmp"
    # Endpoints (ip, port) that "wrong" spoofs claim to come from, with this endpoint's right acknowledgment.
    impostors: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class SynSeen:
    ip: str
    port: int
    at: float  # the lab kernel's receive time (wall clock): compare SYNs with each other only


class Responder:
    def __init__(self, log: Path) -> None:
        self.log = log

    def syns(self) -> list[SynSeen]:
        """Every SYN the responder saw, in order."""
        if not self.log.exists():
            return []
        return [SynSeen(**json.loads(line)) for line in self.log.read_text().splitlines() if line.strip()]

    def syn_times(self, ip: str, port: int) -> list[float]:
        return [syn.at for syn in self.syns() if (syn.ip, syn.port) == (ip, port)]


@contextlib.contextmanager
def responder(lab: ScanLab, rules: Mapping[tuple[str, int], Rule], folder: Path) -> Iterator[Responder]:
    """The userspace responder in the lab's namespace, answering by `rules`; the lab kernel's TCP replies dropped."""
    lab.nft(RESPONDER_RULESET)
    config = folder / "responder.json"
    log = folder / "responder.log"
    config.write_text(json.dumps([
        {"ip": ip, "port": port, **rule.__dict__, "impostors": [list(item) for item in rule.impostors]}
        for (ip, port), rule in rules.items()
    ]))  # fmt: skip
    process = subprocess.Popen(
        [*lab.exec_prefix(lab.lab), sys.executable, "-m", "tests.scan_lab", str(config), str(log)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the lab responder did not start")
        yield Responder(log)
    finally:
        process.kill()
        process.wait(timeout=30)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_header(source: str, destination: str, protocol: int, payload_length: int) -> bytes:
    # The kernel fills in the checksum and ID (IP_HDRINCL).
    return struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + payload_length, 0, 0x4000, 64, protocol, 0,
        socket.inet_aton(source), socket.inet_aton(destination),
    )  # fmt: skip


def tcp_packet(source: str, destination: str, sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    """An IPv4 TCP segment without options, checksummed."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!BBH", 0, 6, len(header))
    header = header[:16] + struct.pack("!H", _checksum(pseudo + header)) + header[18:]
    return _ip_header(source, destination, socket.IPPROTO_TCP, len(header)) + header


def icmp_unreachable(source: str, quoted: bytes, code: int = 13) -> bytes:
    """ICMP destination unreachable from `source`, quoting the IP header and first 8 bytes of `quoted`."""
    destination = socket.inet_ntoa(quoted[12:16])
    body = struct.pack("!BBHI", 3, code, 0, 0) + quoted[:28]
    body = body[:2] + struct.pack("!H", _checksum(body)) + body[4:]
    return _ip_header(source, destination, socket.IPPROTO_ICMP, len(body)) + body


def spoofs(kind: str, syn: bytes, impostors: Sequence[tuple[str, int]] = ()) -> list[bytes]:
    """The replies a spoofer sends for one SYN it saw: `wrong` ones that must change nothing, or one right one."""
    scanner, target = socket.inet_ntoa(syn[12:16]), socket.inet_ntoa(syn[16:20])
    sport, port, seq = struct.unpack_from("!HHI", syn, 20)
    right = seq + 1
    if kind == "right-syn-ack":
        return [tcp_packet(target, scanner, port, sport, 77, right, _SYN | _ACK)]
    if kind == "right-reset":
        return [tcp_packet(target, scanner, port, sport, 0, right, _RST | _ACK)]
    if kind == "right-icmp":
        return [icmp_unreachable(target, syn[:28])]
    wrong_seq = tcp_packet(scanner, target, sport, port, seq + 1, 0, _SYN)
    wrong_sport = tcp_packet(scanner, target, sport ^ 1, port, seq, 0, _SYN)
    packets = [
        # Wrong acknowledgment numbers: off by one either way, and far off.
        *(tcp_packet(target, scanner, port, sport, 77, ack, flags)
          for ack in (seq, seq + 2, right ^ 0x80000000, 0)
          for flags in (_SYN | _ACK, _RST | _ACK)),
        # The right acknowledgment, to the wrong port of the scanner.
        *(tcp_packet(target, scanner, port, dport, 77, right, flags)
          for dport in (sport ^ 1, sport + 2 if sport < 65533 else sport - 2)
          for flags in (_SYN | _ACK, _RST | _ACK)),
        # ICMP errors that quote a probe this scanner never sent: a wrong sequence number, a wrong source port.
        icmp_unreachable(target, wrong_seq),
        icmp_unreachable(target, wrong_sport),
    ]  # fmt: skip
    # The right acknowledgment, from other endpoints (another address, another port): a probe's answer is its own.
    for ip, other_port in impostors:
        packets += [
            tcp_packet(ip, scanner, other_port, sport, 77, right, flags) for flags in (_SYN | _ACK, _RST | _ACK)
        ]
    return packets


def _respond(config_path: str, log_path: str) -> None:
    rules = {(item["ip"], item["port"]): item for item in json.loads(Path(config_path).read_text())}
    receiver = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    receiver.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sender.setsockopt(socket.SOL_SOCKET, _SO_MARK, RESPONDER_MARK)
    selector = selectors.DefaultSelector()
    selector.register(receiver, selectors.EVENT_READ)
    seen: dict[tuple[str, int], int] = {}
    pending: list[tuple[float, bytes]] = []
    stop_at = time.monotonic() + RESPONDER_LIFETIME_SECONDS
    with open(log_path, "a") as log:
        print("ready", flush=True)
        while time.monotonic() < stop_at:
            pending.sort(key=lambda item: item[0])
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                packet = pending.pop(0)[1]
                sender.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
            wait = min(0.5, pending[0][0] - now) if pending else 0.5
            selector.select(timeout=max(0.0, wait))
            for _ in range(10_000):
                try:
                    packet, ancillary, _, _ = receiver.recvmsg(65535, 128)
                except BlockingIOError:
                    break
                received = next(
                    (sum(x * y for x, y in zip(struct.unpack("=qq", data[:16]), (1, 1e-9), strict=True))
                     for level, kind, data in ancillary if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS),
                    time.time(),
                )  # fmt: skip
                header = (packet[0] & 0x0F) * 4
                if header != 20 or len(packet) < 40:
                    continue  # the scanner's SYNs carry no IP options
                target = socket.inet_ntoa(packet[16:20])
                _, port = struct.unpack_from("!HH", packet, header)
                flags = packet[header + 13]
                rule = rules.get((target, port))
                if rule is None or flags & (_SYN | _ACK | _RST) != _SYN:
                    continue
                seen[(target, port)] = seen.get((target, port), 0) + 1
                log.write(json.dumps({"ip": target, "port": port, "at": received}) + "\n")
                log.flush()
                if rule["spoof"]:
                    for spoof in spoofs(rule["spoof"], packet, [tuple(item) for item in rule["impostors"]]):
                        sender.sendto(spoof, (socket.inet_ntoa(spoof[16:20]), 0))
                if rule["answer"] is None or (rule["ignore_first"] and seen[(target, port)] == 1):
                    continue
                sport, _, seq = struct.unpack_from("!HHI", packet, 20)
                scanner = socket.inet_ntoa(packet[12:16])
                flags_out = _SYN | _ACK if rule["answer"] == "syn-ack" else _RST | _ACK
                reply = tcp_packet(target, scanner, port, sport, 1000, seq + 1, flags_out)
                due = time.monotonic() - max(0.0, time.time() - received) + rule["delay"]
                pending.append((due, reply))


def main(argv: Sequence[str]) -> int:
    """Run the responder: `python -m tests.scan_lab CONFIG.json LOG`."""
    _respond(argv[0], argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
