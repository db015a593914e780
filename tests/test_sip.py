"""sip/<port> against stand-in servers on 127.0.0.1: a lost first datagram, a non-SIP answer, silence, a closed port.
(kamailio itself is in test_sip_lab.py.)"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Status
from preflight.probes import sip
from preflight.profiles import load_profiles
from preflight.target import Target
from tests.deadlines import within_deadline
from tests.loopback import loopback_server

PROFILES = load_profiles()
VOIP = PROFILES["pbxware"].addon("voip")
ANSWER = b"SIP/2.0 405 Method Not Allowed\r\nVia: x\r\nUser-Agent: PBX-stand-in 1.0\r\nContent-Length: 0\r\n\r\n"


@contextlib.contextmanager
def udp_server(answer: Callable[[int, bytes], bytes | None], port: int = 0) -> Iterator[tuple[int, list[bytes]]]:
    """A UDP stand-in: `answer(n, request)` for the n-th datagram (from 1), None for silence; bounded to 5 s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.1)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        ends = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < ends:
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            received.append(data)
            reply = answer(len(received), data)
            if reply is not None:
                sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], received
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def _target(port: int) -> Target:
    host = Host.model_validate(
        {"name": "p", "product": "pbxware", "address": "127.0.0.1", "profiles": ["voip"]},
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )
    assert VOIP is not None
    return Target(f"sip/{port}", "r", host, VOIP, port=port, ip="127.0.0.1", addresses=("127.0.0.1",))


def test_a_lost_first_request_is_sent_again_and_a_non_sip_tcp_answer_is_quoted() -> None:
    def tcp(connection: socket.socket) -> None:
        connection.recv(65535)
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    with loopback_server(tcp, 5) as port, udp_server(lambda n, _: ANSWER if n == 2 else None, port) as (_, got):
        finding = sip.run(_target(port), Deadline(6))

    udp, tcp_seen = finding.evidence["udp"], finding.evidence["tcp"]
    assert (finding.status, udp["state"], udp["requests_sent"], udp["status_code"]) == (Status.WARN, "answered", 2, 405)
    assert (udp["status_line"], udp["user_agent"]) == ("SIP/2.0 405 Method Not Allowed", "PBX-stand-in 1.0")
    assert (tcp_seen["state"], tcp_seen["heard"]) == ("not-sip", "HTTP/1.1 400 Bad Request\\x0d")
    assert finding.summary.startswith(f"SIP answers on UDP {port} (SIP/2.0 405 Method Not Allowed from PBX-stand-in")
    # A retransmission is the same request, as RFC 3261 wants: same Call-ID, branch and tag.
    assert got[0] == got[1] and got[0].startswith(f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n".encode())


@pytest.mark.deadline
def test_silent_udp_and_a_closed_tcp_port_fail_within_the_deadline() -> None:
    with udp_server(lambda n, _: None) as (port, got):
        started = time.monotonic()
        finding = sip.run(_target(port), Deadline(3))
        elapsed = time.monotonic() - started

    udp, tcp = finding.evidence["udp"], finding.evidence["tcp"]
    assert (finding.status, udp["state"], udp["reason"], tcp["state"]) == (
        Status.FAIL,
        "filtered-or-open",
        "no-response",
        "closed",
    )
    assert udp["requests_sent"] == len(got) == 2
    within_deadline(elapsed, 3.5)
    assert "never" not in finding.summary and " open" not in finding.summary.replace("filtered-or-open", "")
