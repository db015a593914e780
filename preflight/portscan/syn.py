"""The privileged method: raw SYN probes, as `nmap -sS` sends them, and ICMP echo for evidence.

Every packet is packed and read with struct, because the scan sends thousands of them: a SYN is a fixed
template whose addresses, ports, sequence number and checksum are filled in per probe, with the checksum summed
once per host and finished per probe (RFC 1624's incremental idea). scapy is not imported at all; tests check
every SYN this module builds, and the ICMP errors it reads, against scapy's own dissection.
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
from typing import NamedTuple, cast

from preflight.portscan.engine import Answer, ScanEngine
from preflight.portscan.verdict import EchoResult, Endpoint, IcmpError, PortVerdict

_SO_RXQ_OVFL = 40
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = 35
_RECEIVE_BUFFER_BYTES = 32 * 1024 * 1024
_TCP_FLAG_SYN, _TCP_FLAG_RST, _TCP_FLAG_ACK = 0x02, 0x04, 0x10
_SYN_ACK = _TCP_FLAG_SYN | _TCP_FLAG_ACK
_MSS_OPTION = b"\x02\x04\x05\xb4"
_ICMP_ECHO_REPLY, _ICMP_UNREACHABLE, _ICMP_ECHO_REQUEST = 0, 3, 8
_ECHO_PAYLOAD = b"preflight echo"
_READS_PER_WAKEUP = 10_000
# The largest IPv4 packet: a read never truncates what the kernel holds.
_PACKET_BYTES = 65535
_ANCILLARY_BYTES = 128

# A SYN: IPv4 header (the kernel fills in its checksum and ID, IP_HDRINCL), then TCP with the MSS option.
_TCP_LENGTH = 24
_IP_PREFIX = struct.pack("!BBHHHBBH", 0x45, 0, 20 + _TCP_LENGTH, 0, 0x4000, 64, socket.IPPROTO_TCP, 0)
_TCP_OFFSET_FLAGS = (_TCP_LENGTH // 4) << 12 | _TCP_FLAG_SYN
_TCP_WINDOW = 1024
_SYN = struct.Struct("!12s4s4sHHIIHHHH4s")
# The checksum words that are the same in every SYN: the pseudo-header's protocol and length, the fixed header
# fields (acknowledgment 0, offset and flags, window, urgent pointer 0) and the MSS option.
_SYN_CONSTANT_SUM = (
    socket.IPPROTO_TCP + _TCP_LENGTH + _TCP_OFFSET_FLAGS + _TCP_WINDOW + sum(struct.unpack("!2H", _MSS_OPTION))
)
_TCP_PORTS_ACK_FLAGS = struct.Struct("!HHIIxB")
_QUOTED_TCP = struct.Struct("!HHI")
_ECHO_ID = struct.Struct("!H")
_TIMESTAMP = struct.Struct("=qq")
_DROPS = struct.Struct("=I")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    return _finish_checksum(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def _finish_checksum(total: int) -> int:
    """Fold a sum of 16-bit words into the one's complement checksum."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _address_sum(packed: bytes) -> int:
    high, low = cast(tuple[int, int], struct.unpack("!HH", packed))
    return high + low


def syn_packet(source: str, destination: str, source_port: int, port: int, sequence: int) -> bytes:
    """An IPv4 SYN with an MSS option; the kernel fills in the IP checksum and length (IP_HDRINCL)."""
    packed_source, packed_destination = socket.inet_aton(source), socket.inet_aton(destination)
    host_sum = _address_sum(packed_source) + _address_sum(packed_destination) + source_port
    return _syn(packed_source, packed_destination, host_sum, source_port, port, sequence)


def _syn(
    packed_source: bytes, packed_destination: bytes, host_sum: int, source_port: int, port: int, sequence: int
) -> bytes:
    # host_sum holds the addresses and the source port; only the port and sequence number change per probe.
    total = _SYN_CONSTANT_SUM + host_sum + port + (sequence >> 16) + (sequence & 0xFFFF)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return _SYN.pack(
        _IP_PREFIX, packed_source, packed_destination, source_port, port, sequence, 0, _TCP_OFFSET_FLAGS,
        _TCP_WINDOW, ~total & 0xFFFF, 0, _MSS_OPTION,
    )  # fmt: skip


def echo_request(echo_id: int) -> bytes:
    """An ICMP echo request with preflight's payload."""
    unsummed = struct.pack("!BBHHH", _ICMP_ECHO_REQUEST, 0, 0, echo_id, 1) + _ECHO_PAYLOAD
    return unsummed[:2] + struct.pack("!H", checksum(unsummed)) + unsummed[4:]


def route(ip: str) -> tuple[bytes, bytes, int] | None:
    """`ip` and the source address the kernel routes to it from, packed, with their checksum words; None: no route."""
    # A UDP socket's connect() asks the routing table and sends nothing. A fresh socket each time: a connected one
    # keeps its first source address, and with 127.0.0.1 it then refuses every address off this machine (EINVAL).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as router:
        try:
            router.connect((ip, 9))
        except OSError:
            return None
        source = router.getsockname()[0]
    packed_source, packed_destination = socket.inet_aton(source), socket.inet_aton(ip)
    return packed_destination, packed_source, _address_sum(packed_source) + _address_sum(packed_destination)


class QuotedProbe(NamedTuple):
    """What an ICMP destination unreachable says about the TCP probe it quotes."""

    code: int
    sender: str
    source_port: int
    ip: str
    port: int
    sequence: int


def unreachable_probe(packet: bytes | bytearray, size: int) -> QuotedProbe | None:
    """The TCP probe an ICMP destination unreachable (an IPv4 packet of `size` bytes) quotes; None for anything else."""
    header_length = (packet[0] & 0x0F) * 4
    if size < header_length + 8 or packet[header_length] != _ICMP_UNREACHABLE:
        return None
    # The error quotes our probe: its IP header, then at least the first 8 bytes of its TCP header (RFC 792).
    quoted = header_length + 8
    if size < quoted + 20 or packet[quoted + 9] != socket.IPPROTO_TCP:
        return None
    quoted_tcp = quoted + (packet[quoted] & 0x0F) * 4
    if size < quoted_tcp + _QUOTED_TCP.size:
        return None
    source_port, port, sequence = _QUOTED_TCP.unpack_from(packet, quoted_tcp)
    return QuotedProbe(
        code=packet[header_length + 1],
        sender=socket.inet_ntoa(packet[12:16]),
        source_port=source_port,
        ip=socket.inet_ntoa(packet[quoted + 16 : quoted + 20]),
        port=port,
        sequence=sequence,
    )


class SynEngine(ScanEngine):
    method = "syn"

    def __init__(self, timeout: float, window: int, *, echo: bool = True) -> None:
        super().__init__(timeout, window)
        self._send_echo = echo
        self._key = secrets.token_bytes(16)
        # Per host: its packed address, our packed source address and their checksum words (None: no route).
        self._hosts: dict[str, tuple[bytes, bytes, int] | None] = {}
        self._sequences: dict[Endpoint, int] = {}
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
        self._buffer = bytearray(_PACKET_BYTES)
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
        packed = socket.inet_aton(endpoint[0]) + endpoint[1].to_bytes(2, "big")
        return int.from_bytes(hashlib.blake2s(packed, key=self._key, digest_size=4).digest(), "big")

    def scan(self, endpoints: Sequence[Endpoint]) -> dict[Endpoint, PortVerdict]:
        if self._send_echo:
            self._send_echoes(dict.fromkeys(ip for ip, _ in endpoints))
        verdicts = super().scan(endpoints)
        self._drain()
        for ip in self._echo_sent:
            self.echo.setdefault(ip, EchoResult(replied=False))
        return verdicts

    def _send_echoes(self, ips: Iterable[str]) -> None:
        request = echo_request(self._echo_id)
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
        try:
            host = self._hosts[ip]
        except KeyError:
            host = self._hosts[ip] = route(ip)
        if host is None:
            self.answer_without_probe(endpoint, Answer("filtered", "local-no-route"))
            return True
        packed_destination, packed_source, address_sum = host
        sequence = self._sequences.get(endpoint)
        if sequence is None:
            digest = hashlib.blake2s(packed_destination + port.to_bytes(2, "big"), key=self._key, digest_size=4)
            sequence = self._sequences[endpoint] = int.from_bytes(digest.digest(), "big")
        source_port = self.source_port
        packet = _syn(packed_source, packed_destination, address_sum + source_port, source_port, port, sequence)
        try:
            self._sender.sendto(packet, (ip, 0))
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                return False
            name = errno.errorcode.get(exc.errno or 0, "error").lower()
            self.answer_without_probe(endpoint, Answer("filtered", f"local-{name}"))
        return True

    def release(self, endpoint: Endpoint) -> None:
        """A SYN probe holds nothing but its sequence number: the kernel resets the handshake for us."""
        self._sequences.pop(endpoint, None)

    def read(self, key: selectors.SelectorKey) -> Iterable[tuple[Endpoint, Answer]]:
        answers: list[tuple[Endpoint, Answer]] = []
        parse = key.data
        sock = cast(socket.socket, key.fileobj)
        buffer = self._buffer
        # Kernel receive times are on the wall clock; the scan's clock is monotonic.
        wall_to_monotonic = time.monotonic() - time.time()
        for _ in range(_READS_PER_WAKEUP):
            try:
                size, ancillary, _, _ = sock.recvmsg_into((buffer,), _ANCILLARY_BYTES)
            except BlockingIOError:
                break
            received_at = None
            for level, kind, data in ancillary:
                if level != socket.SOL_SOCKET:
                    continue
                if kind == _SO_TIMESTAMPNS and len(data) >= _TIMESTAMP.size:
                    seconds, nanoseconds = _TIMESTAMP.unpack_from(data)
                    received_at = seconds + nanoseconds / 1e9 + wall_to_monotonic
                elif kind == _SO_RXQ_OVFL and len(data) >= _DROPS.size:
                    self.dropped = max(self.dropped, _DROPS.unpack_from(data)[0])
            answer = parse(buffer, size, received_at)
            if answer is not None:
                answers.append(answer)
        return answers

    def _rtt(self, endpoint: Endpoint, received_at: float | None) -> float | None:
        sent_at = self.sent_at(endpoint)
        return None if sent_at is None or received_at is None else max(0.0, received_at - sent_at)

    def _tcp_answers(self, packet: bytearray, size: int, received_at: float | None) -> tuple[Endpoint, Answer] | None:
        header_length = (packet[0] & 0x0F) * 4
        if size < header_length + 20:
            return None
        source_port, destination_port, _, acknowledged, flags = _TCP_PORTS_ACK_FLAGS.unpack_from(packet, header_length)
        if destination_port != self.source_port:
            return None
        endpoint = (socket.inet_ntoa(packet[12:16]), source_port)
        sequence = self._sequences.get(endpoint)
        if sequence is None or acknowledged != (sequence + 1) & 0xFFFFFFFF or not self.in_flight(endpoint):
            return None
        if flags & _TCP_FLAG_RST:
            return endpoint, Answer("closed", "reset", rtt=self._rtt(endpoint, received_at))
        if flags & _SYN_ACK == _SYN_ACK:
            return endpoint, Answer("open", "syn-ack", rtt=self._rtt(endpoint, received_at))
        return None

    def _icmp_answers(self, packet: bytearray, size: int, received_at: float | None) -> tuple[Endpoint, Answer] | None:
        header_length = (packet[0] & 0x0F) * 4
        if size < header_length + 8:
            return None
        if packet[header_length] == _ICMP_ECHO_REPLY:
            echo_id = _ECHO_ID.unpack_from(packet, header_length + 4)[0]
            self._record_echo(socket.inet_ntoa(packet[12:16]), echo_id, received_at)
            return None
        quoted = unreachable_probe(packet, size)
        if quoted is None or quoted.source_port != self.source_port:
            return None
        endpoint = (quoted.ip, quoted.port)
        if not self.in_flight(endpoint) or quoted.sequence != self._sequences.get(endpoint):
            return None
        icmp_error = IcmpError.unreachable(quoted.code, quoted.sender)
        return endpoint, Answer("filtered", "icmp-unreachable", icmp_error, self._rtt(endpoint, received_at))

    def _record_echo(self, ip: str, echo_id: int, received_at: float | None) -> None:
        sent = self._echo_sent.get(ip)
        if echo_id != self._echo_id or sent is None or ip in self.echo:
            return
        rtt = max(0.0, (received_at or time.monotonic()) - sent)
        self.echo[ip] = EchoResult(replied=True, rtt_ms=round(rtt * 1000, 3))
        self.timing.record(ip, rtt)
