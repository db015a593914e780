"""The unprivileged method: non-blocking connect() on many sockets at once, ICMP errors read from IP_RECVERR."""

from __future__ import annotations

import contextlib
import errno
import resource
import selectors
import socket
import struct
from collections.abc import Iterable
from typing import cast

from preflight.portscan.engine import Answer, ScanEngine
from preflight.portscan.verdict import Endpoint, IcmpError

_IP_RECVERR = 11
_IPV6_RECVERR = 25
_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6 = 2, 3
# Sockets kept free for everything else the process does (report files, SSH, HTTP).
_RESERVED_FILES = 256
_TCPI_RTT_OFFSET = 68


def window_for_open_files(wanted: int) -> int:
    """At most `wanted` probes in flight, and never so many that a retry could run out of file descriptors."""
    soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, min(wanted, (soft_limit - _RESERVED_FILES) // 2))


class ConnectEngine(ScanEngine):
    method = "connect"

    def __init__(self, timeout: float, window: int) -> None:
        super().__init__(timeout, window_for_open_files(window))
        self._sockets: dict[Endpoint, list[socket.socket]] = {}
        self._immediate_errors: dict[socket.socket, int] = {}

    def send(self, endpoint: Endpoint, attempt: int) -> bool:
        ip, port = endpoint
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                return False
            raise
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        self._sockets.setdefault(endpoint, []).append(sock)
        # An error connect() reports at once (no route) never reaches SO_ERROR, so it is kept for read().
        immediate = sock.connect_ex((ip, port))
        if immediate not in (0, errno.EINPROGRESS):
            self._immediate_errors[sock] = immediate
        self.selector.register(sock, selectors.EVENT_WRITE, endpoint)
        return True

    def read(self, key: selectors.SelectorKey) -> Iterable[tuple[Endpoint, Answer]]:
        endpoint: Endpoint = key.data
        sock = cast(socket.socket, key.fileobj)
        error = self._immediate_errors.pop(sock, None) or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error == 0:
            return [(endpoint, Answer("open", "syn-ack", rtt=_kernel_rtt(sock)))]
        icmp = _queued_icmp_error(sock)
        if icmp is not None and icmp.meaning != "port-unreach":
            return [(endpoint, Answer("filtered", "icmp-unreachable", icmp))]
        if error == errno.ECONNREFUSED and icmp is None:
            return [(endpoint, Answer("closed", "reset"))]
        if icmp is not None:
            return [(endpoint, Answer("filtered", "icmp-unreachable", icmp))]
        # Refused by this machine's own firewall or routing (EPERM, EACCES, ENETUNREACH without ICMP).
        return [(endpoint, Answer("filtered", f"local-{errno.errorcode.get(error, str(error)).lower()}"))]

    def release(self, endpoint: Endpoint) -> None:
        for sock in self._sockets.pop(endpoint, []):
            self._immediate_errors.pop(sock, None)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)
            sock.close()

    def close(self) -> None:
        for endpoint in list(self._sockets):
            self.release(endpoint)
        super().close()


def _kernel_rtt(sock: socket.socket) -> float | None:
    """The handshake's round trip as the kernel measured it (tcp_info.tcpi_rtt, in microseconds)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    microseconds: int = struct.unpack_from("=I", info, _TCPI_RTT_OFFSET)[0]
    return microseconds / 1e6


def _queued_icmp_error(sock: socket.socket) -> IcmpError | None:
    """The ICMP error the kernel queued for this socket (IP_RECVERR), with its type, code and sender."""
    try:
        _, ancillary, _, _ = sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
    except OSError:
        return None
    for _, _, data in ancillary:
        if len(data) < 16:
            continue
        _, origin, icmp_type, code = struct.unpack_from("=IBBB", data)
        if origin not in (_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6):
            continue
        source = _offender(data[16:])
        if origin == _SO_EE_ORIGIN_ICMP and icmp_type == 3:
            return IcmpError.unreachable(code, source)
        if origin == _SO_EE_ORIGIN_ICMP6 and icmp_type == 1:
            return IcmpError.unreachable(code, source, version=6)
        return IcmpError(icmp_type, code, f"type-{icmp_type}", source)
    return None


def _offender(sockaddr: bytes) -> str:
    """The address in the sockaddr that follows sock_extended_err: who sent the ICMP error."""
    if len(sockaddr) >= 8 and struct.unpack_from("=H", sockaddr)[0] == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, sockaddr[4:8])
    if len(sockaddr) >= 24 and struct.unpack_from("=H", sockaddr)[0] == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, sockaddr[8:24])
    return ""
