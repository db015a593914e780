"""HTTP for probes: a requests session that no server can hold past the check's deadline.

requests' timeouts bound each socket wait, so a server that trickles one byte at a time can stretch a
request forever. Every read of a response checks the deadline first and waits no longer than what is left of
it; and the session shuts down every socket it opened once the deadline passes, for the waits before a response
(connect, TLS handshake). Shutting a socket down alone is not enough: Linux still delivers what a server sends
after a SHUT_RD, so a server that keeps dripping would keep a blocked read going.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

from preflight.deadline import Deadline

# PBX Web GUIs normally use self-signed certificates: probes report certificates themselves.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


class _DeadlineAdapter(HTTPAdapter):
    def __init__(self, deadline: Deadline) -> None:
        self._sockets: list[socket.socket] = []
        self.peer_certificates: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()
        self._expired = False
        # What responses' reads end by: the session's deadline, or a request's own earlier one (`limit_reads`).
        self.read_deadline = deadline
        super().__init__(max_retries=0)
        self._timer = threading.Timer(deadline.remaining(), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        track, remember_certificate = self._track, self._remember_certificate

        response_class = deadline_response_class(lambda: self.read_deadline)

        class TrackedHTTPConnection(HTTPConnection):
            def _new_conn(self) -> socket.socket:
                return track(super()._new_conn())

        TrackedHTTPConnection.response_class = response_class

        class TrackedHTTPSConnection(HTTPSConnection):
            def _new_conn(self) -> socket.socket:
                return track(super()._new_conn())

            def connect(self) -> None:
                super().connect()
                remember_certificate(self.host, self.port, self.sock)

        TrackedHTTPSConnection.response_class = response_class

        class TrackedHTTPPool(HTTPConnectionPool):
            ConnectionCls = TrackedHTTPConnection

        class TrackedHTTPSPool(HTTPSConnectionPool):
            ConnectionCls = TrackedHTTPSConnection

        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            ssl_context=_tracked_tls_context(track, lambda: self.read_deadline),
            **pool_kwargs,
        )
        self.poolmanager.pool_classes_by_scheme = {"http": TrackedHTTPPool, "https": TrackedHTTPSPool}

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
            if self._expired:
                _shutdown(sock)
        return sock

    def _remember_certificate(self, host: str, port: int, sock: Any) -> None:
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        if der:
            with self._lock:
                self.peer_certificates[(host.strip("[]"), port)] = der

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def close(self) -> None:
        self._timer.cancel()
        super().close()


class _DeadlineReads(io.RawIOBase):
    """A socket's incoming bytes, each read refused once the deadline has passed and waiting at most until it."""

    def __init__(self, stream: io.BufferedReader, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        # `stream` is the socket's own file, unread; it holds the reference that keeps the socket open.
        self._stream = stream
        self._reads = stream.raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self._deadline.expired:
            raise TimeoutError("the deadline passed")
        self._sock.settimeout(self._deadline.cap(self._deadline.remaining()))
        return self._reads.readinto(buffer)

    def close(self) -> None:
        self._stream.close()
        super().close()


def deadline_response_class(deadline: Deadline | Callable[[], Deadline]) -> type[http.client.HTTPResponse]:
    """An http.client response class whose every read of the status line, headers and body ends by `deadline`
    (or by what `deadline()` returns when the response is made)."""

    class DeadlineResponse(http.client.HTTPResponse):
        def __init__(self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None) -> None:
            super().__init__(sock, debuglevel, method, url)
            ends_by = deadline if isinstance(deadline, Deadline) else deadline()
            # The stream http.client opened reads without a deadline: wrap it before anything is read from it.
            self.fp = io.BufferedReader(_DeadlineReads(self.fp, sock, ends_by))

    return DeadlineResponse


def _tracked_tls_context(
    track: Callable[[socket.socket], socket.socket], deadline: Callable[[], Deadline]
) -> ssl.SSLContext:
    """The session's TLS client context: no verification (probes report certificates themselves), and every TLS
    socket tracked and bounded by the deadline before its handshake starts.

    urllib3 wraps the connected socket in a new SSLSocket and detaches the old one, so a shutdown of the socket
    tracked at connect time no longer reaches the handshake; and the handshake's own timeout starts only after the
    connect and the context's set-up, past the deadline.
    """

    class TrackedSSLSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            track(self)
            ends_by = deadline()
            self.settimeout(ends_by.cap(ends_by.remaining()))
            super().do_handshake(block)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.sslsocket_class = TrackedSSLSocket
    return context


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown: SSLSocket.shutdown also drops its SSL object, under a read in another thread.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class DeadlineSession(requests.Session):
    """A requests session bound to one check's deadline that remembers the certificate each HTTPS server showed."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = False
        self._adapter = _DeadlineAdapter(deadline)
        self.mount("http://", self._adapter)
        self.mount("https://", self._adapter)

    def limit_reads(self, deadline: Deadline) -> None:
        """The responses to the requests that follow end by `deadline`, which must not be later than the session's:
        a first attempt that leaves time for a fallback."""
        self._adapter.read_deadline = deadline

    def peer_certificate(self, ip: str, port: int) -> bytes | None:
        """The DER certificate the HTTPS server at (ip, port) presented on this session's last connection to it."""
        return self._adapter.peer_certificates.get((ip, port))


def deadline_session(deadline: Deadline) -> DeadlineSession:
    """A session that ignores proxy settings, accepts self-signed certificates, and ends at `deadline`."""
    return DeadlineSession(deadline)


def exception_causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps, through arguments, `reason` and exception chaining; bounded against cycles.

    requests and urllib3 wrap the socket error that tells what happened several layers deep.
    """
    queue, seen = [exc], set[int]()
    while queue and len(seen) < 32:
        cause = queue.pop(0)
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        linked = [*cause.args, getattr(cause, "reason", None), cause.__cause__, cause.__context__]
        queue.extend(item for item in linked if isinstance(item, BaseException))
