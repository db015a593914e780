"""The privileged method: raw SYN probes, as `nmap -sS` sends them, and ICMP echo for evidence.

The SYN and its reply are packed and read with struct, because the scan sends thousands of them and scapy
takes about 0.4 ms to build each one; scapy dissects the rarer ICMP messages, errors with the packet they
quote included. Tests check every SYN this module builds against scapy's own dissection.
"""

from __future__ import annotations

import errno
import hashlib
import secrets
import selectors
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import cast

from preflight.portscan.engine import Answer, ScanEngine
from preflight.portscan.verdict import EchoResult, Endpoint, IcmpError, PortVerdict
from preflight.resolution import source_address

_SO_RXQ_OVFL = 40
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = 35
_RECEIVE_BUFFER_BYTES = 32 * 1024 * 1024
_TCP_FLAG_SYN, _TCP_FLAG_RST, _TCP_FLAG_ACK = 0x02, 0x04, 0x10
_MSS_OPTION = b"\x02\x04\x05\xb4"
_ICMP_ECHO_REPLY, _ICMP_UNREACHABLE = 0, 3
_READS_PER_WAKEUP = 10_000


def raw_sockets_allowed() -> bool:
    """Whether this process may send raw packets (root, or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
    except PermissionError:
        return False
    return True


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_packet(source: str, destination: str, source_port: int, port: int, sequence: int) -> bytes:
    """An IPv4 SYN with an MSS option; the kernel fills in the IP checksum and length (IP_HDRINCL)."""
    tcp_header = struct.pack("!HHIIBBHHH", source_port, port, sequence, 0, 6 << 4, _TCP_FLAG_SYN, 1024, 0, 0)
    segment = tcp_header + _MSS_OPTION
    pseudo_header = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!BBH", 0, 6, len(segment))
    segment = segment[:16] + struct.pack("!H", checksum(pseudo_header + segment)) + segment[18:]
    ip_header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(segment), 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
        socket.inet_aton(source), socket.inet_aton(destination),
    )  # fmt: skip
    return ip_header + segment


class SynEngine(ScanEngine):
    method = "syn"

    def __init__(self, timeout: float, window: int, *, echo: bool = True) -> None:
        super().__init__(timeout, window)
        self._send_echo = echo
        self._key = secrets.token_bytes(16)
        self._sources: dict[str, str | None] = {}
        self._echo_sent: dict[str, float] = {}
        self.echo: dict[str, EchoResult] = {}
        self.dropped = 0
        # A bound socket keeps the source port ours; with no listener on it, the kernel resets every SYN-ACK,
        # so no half-open connection is left behind (what nmap -sS does).
        self._port_holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._port_holder.bind(("0.0.0.0", 0))  # noqa: S104 - reserves a port number; never listens
        self.source_port: int = self._port_holder.getsockname()[1]
        self._echo_id = secrets.randbelow(0xFFFF) + 1
        self._sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._tcp = self._receiver(socket.IPPROTO_TCP)
        self._icmp = self._receiver(socket.IPPROTO_ICMP)
        self.selector.register(self._tcp, selectors.EVENT_READ, self._tcp_answers)
        self.selector.register(self._icmp, selectors.EVENT_READ, self._icmp_answers)

    def __enter__(self) -> SynEngine:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        super().close()
        for sock in (self._port_holder, self._sender, self._tcp, self._icmp):
            sock.close()

    @staticmethod
    def _receiver(protocol: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, protocol)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RECEIVE_BUFFER_BYTES)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        return sock

    def sequence(self, endpoint: Endpoint) -> int:
        """A keyed hash of the endpoint, so only a real answer to our own probe can match (as a SYN cookie)."""
        digest = hashlib.blake2s(f"{endpoint[0]}|{endpoint[1]}".encode(), key=self._key, digest_size=4).digest()
        return int.from_bytes(digest, "big")

    def scan(self, endpoints: Sequence[Endpoint]) -> dict[Endpoint, PortVerdict]:
        if self._send_echo:
            self._send_echoes(dict.fromkeys(ip for ip, _ in endpoints))
        verdicts = super().scan(endpoints)
        self._drain()
        for ip in self._echo_sent:
            self.echo.setdefault(ip, EchoResult(replied=False))
        return verdicts

    def _send_echoes(self, ips: Iterable[str]) -> None:
        from scapy.layers.inet import ICMP
        from scapy.packet import Raw

        request = bytes(ICMP(type=8, id=self._echo_id, seq=1) / Raw(b"preflight echo"))
        for ip in ips:
            # Read the clock first: on a local link the reply can be timestamped before sendto() returns.
            sent_at = time.monotonic()
            try:
                self._icmp.sendto(request, (ip, 0))
            except OSError:
                continue
            self._echo_sent[ip] = sent_at

    def send(self, endpoint: Endpoint, attempt: int) -> bool:
        ip, port = endpoint
        if ip not in self._sources:
            self._sources[ip] = source_address(ip)
        source = self._sources[ip]
        if source is None:
            self.answer_without_probe(endpoint, Answer("filtered", "local-no-route"))
            return True
        try:
            self._sender.sendto(syn_packet(source, ip, self.source_port, port, self.sequence(endpoint)), (ip, 0))
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                return False
            name = errno.errorcode.get(exc.errno or 0, "error").lower()
            self.answer_without_probe(endpoint, Answer("filtered", f"local-{name}"))
        return True

    def release(self, endpoint: Endpoint) -> None:
        """A SYN probe holds nothing: the kernel resets the handshake for us."""

    def read(self, key: selectors.SelectorKey) -> Iterable[tuple[Endpoint, Answer]]:
        answers: list[tuple[Endpoint, Answer]] = []
        parse = key.data
        sock = cast(socket.socket, key.fileobj)
        # Kernel receive times are on the wall clock; the scan's clock is monotonic.
        wall_to_monotonic = time.monotonic() - time.time()
        for _ in range(_READS_PER_WAKEUP):
            try:
                packet, ancillary, _, _ = sock.recvmsg(65535, 128)
            except BlockingIOError:
                break
            received_at = None
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_RXQ_OVFL and len(data) >= 4:
                    self.dropped = max(self.dropped, struct.unpack("=I", data[:4])[0])
                elif level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                    seconds, nanoseconds = struct.unpack("=qq", data[:16])
                    received_at = seconds + nanoseconds / 1e9 + wall_to_monotonic
            answer = parse(packet, received_at)
            if answer is not None:
                answers.append(answer)
        return answers

    def _rtt(self, endpoint: Endpoint, received_at: float | None) -> float | None:
        sent_at = self.sent_at(endpoint)
        return None if sent_at is None or received_at is None else max(0.0, received_at - sent_at)

    def _tcp_answers(self, packet: bytes, received_at: float | None) -> tuple[Endpoint, Answer] | None:
        header_length = (packet[0] & 0x0F) * 4
        if len(packet) < header_length + 20:
            return None
        source_port, destination_port, _, acknowledged, _, flags = struct.unpack_from("!HHIIBB", packet, header_length)
        if destination_port != self.source_port:
            return None
        endpoint = (socket.inet_ntoa(packet[12:16]), source_port)
        if not self.in_flight(endpoint) or acknowledged != (self.sequence(endpoint) + 1) & 0xFFFFFFFF:
            return None
        if flags & _TCP_FLAG_RST:
            return endpoint, Answer("closed", "reset", rtt=self._rtt(endpoint, received_at))
        if flags & (_TCP_FLAG_SYN | _TCP_FLAG_ACK) == _TCP_FLAG_SYN | _TCP_FLAG_ACK:
            return endpoint, Answer("open", "syn-ack", rtt=self._rtt(endpoint, received_at))
        return None

    def _icmp_answers(self, packet: bytes, received_at: float | None) -> tuple[Endpoint, Answer] | None:
        header_length = (packet[0] & 0x0F) * 4
        if len(packet) < header_length + 8:
            return None
        if packet[header_length] == _ICMP_ECHO_REPLY:
            echo_id = struct.unpack_from("!H", packet, header_length + 4)[0]
            self._record_echo(socket.inet_ntoa(packet[12:16]), echo_id, received_at)
            return None
        if packet[header_length] != _ICMP_UNREACHABLE:
            return None
        from scapy.layers.inet import ICMP, IP, IPerror, TCPerror

        message = IP(packet)
        icmp = message[ICMP]
        if not message.haslayer(TCPerror) or message[TCPerror].sport != self.source_port:
            return None
        endpoint = (message[IPerror].dst, message[TCPerror].dport)
        if not self.in_flight(endpoint) or message[TCPerror].seq != self.sequence(endpoint):
            return None
        icmp_error = IcmpError.unreachable(icmp.code, message.src)
        return endpoint, Answer("filtered", "icmp-unreachable", icmp_error, self._rtt(endpoint, received_at))

    def _record_echo(self, ip: str, echo_id: int, received_at: float | None) -> None:
        sent = self._echo_sent.get(ip)
        if echo_id != self._echo_id or sent is None or ip in self.echo:
            return
        rtt = max(0.0, (received_at or time.monotonic()) - sent)
        self.echo[ip] = EchoResult(replied=True, rtt_ms=round(rtt * 1000, 3))
        self.timing.record(ip, rtt)
