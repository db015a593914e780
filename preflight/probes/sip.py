"""sip/<port>: the SIP server must answer a SIP OPTIONS request over UDP and over TCP.

Any `SIP/2.0` answer passes, whatever its status code: it proves a SIP server is there. UDP has no connection, so
a UDP port that stays silent is `filtered-or-open` (a firewall may drop the request, or the server may ignore
strangers), never "open"; an ICMP port unreachable makes it closed. Requests are retransmitted as RFC 3261's
timer A says, a bounded number of times; every read is bounded in bytes and ends at the check's deadline.
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from preflight import __version__
from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.profiles import Profile
from preflight.target import Target

REQUIREMENT = "UDP and TCP {port} must be answered by the system's SIP server: {purpose}."
_T1_SECONDS = 0.5  # RFC 3261's round-trip estimate; timer A doubles it for each retransmission
_UDP_SENDS = 4
_RESPONSE_LIMIT = 16384
_SHOWN_LIMIT = 120


def plan(host: Host, profile: Profile) -> list[Target]:
    return [
        Target(
            check_id=f"sip/{required.port}",
            requirement=REQUIREMENT.format(port=required.port, purpose=required.purpose),
            host=host,
            profile=profile,
            port=required.port,
        )
        for required in profile.ports_for("sip")
    ]


def options_request(transport: str, ip: str, port: int, local: tuple[str, int]) -> bytes:
    """One SIP OPTIONS request to the server itself (no user part), as a keep-alive ping is sent."""
    host = f"[{ip}]" if ":" in ip else ip
    local_host = f"[{local[0]}]" if ":" in local[0] else local[0]
    lines = [
        f"OPTIONS sip:{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {local_host}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:preflight@{local_host}>;tag={secrets.token_hex(6)}",
        f"To: <sip:{host}:{port}>",
        f"Call-ID: {secrets.token_hex(12)}@{local_host}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:preflight@{local_host}:{local[1]}>",
        "Accept: application/sdp",
        f"User-Agent: preflight/{__version__}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Answer:
    """What one transport saw."""

    transport: str
    state: str  # answered, closed, filtered-or-open (UDP), filtered (TCP), not-sip, no-response (TCP), error
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.state == "answered"


def parse_response(data: bytes) -> dict[str, Any] | None:
    """The status line and the Server and User-Agent headers of a SIP response, or None if it is not one."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    lines = head.replace("\r\n", "\n").split("\n")
    if not lines[0].startswith("SIP/2.0 "):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip().lower(), value.strip())
    code = lines[0].split(" ", 2)[1] if len(lines[0].split(" ")) > 1 else ""
    return {
        "status_line": _shown(lines[0]),
        "status_code": int(code) if code.isdigit() else None,
        "server": _shown(headers.get("server", "")) or None,
        "user_agent": _shown(headers.get("user-agent", "")) or None,
    }


def over_udp(ip: str, port: int, deadline: Deadline, seconds: float) -> Answer:
    """OPTIONS over UDP, sent again after 0.5, 1, 2 s (timer A) until an answer, an ICMP error or `seconds`."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    give_up = time.monotonic() + min(seconds, deadline.remaining())
    sends = 0
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        # Connected, so that an ICMP port unreachable comes back as ConnectionRefusedError.
        sock.connect((ip, port))
        request = options_request("udp", ip, port, sock.getsockname()[:2])
        wait = _T1_SECONDS
        started = time.monotonic()
        try:
            while sends < _UDP_SENDS and time.monotonic() < give_up:
                sock.send(request)
                sends += 1
                until = min(give_up, time.monotonic() + wait)
                while time.monotonic() < until:
                    sock.settimeout(max(0.001, until - time.monotonic()))
                    try:
                        data = sock.recv(_RESPONSE_LIMIT)
                    except TimeoutError:
                        break
                    parsed = parse_response(data)
                    evidence = {"requests_sent": sends, "waited_s": round(time.monotonic() - started, 2)}
                    if parsed is not None:
                        return Answer("udp", "answered", "sip-response", evidence | parsed)
                    return Answer("udp", "not-sip", "not-a-sip-response", evidence | {"heard": _shown_bytes(data)})
                wait *= 2
        except ConnectionRefusedError:
            return Answer("udp", "closed", "icmp-port-unreachable", {"requests_sent": sends})
        except OSError as exc:
            return Answer("udp", "error", exc.strerror or type(exc).__name__, {"requests_sent": sends})
    waited = round(time.monotonic() - started, 2)
    return Answer("udp", "filtered-or-open", "no-response", {"requests_sent": sends, "waited_s": waited})


def over_tcp(ip: str, port: int, deadline: Deadline) -> Answer:
    """OPTIONS over one TCP connection; the response head is read up to its blank line, bounded in bytes."""
    started = time.monotonic()
    try:
        sock = socket.create_connection((ip, port), timeout=deadline.cap(deadline.remaining()))
    except ConnectionRefusedError:
        return Answer("tcp", "closed", "connection-refused")
    except TimeoutError:
        return Answer("tcp", "filtered", "connect-timeout", {"waited_s": round(time.monotonic() - started, 2)})
    except OSError as exc:
        return Answer("tcp", "error", exc.strerror or type(exc).__name__)
    received = b""
    with sock:
        try:
            sock.sendall(options_request("tcp", ip, port, sock.getsockname()[:2]))
            while b"\r\n\r\n" not in received and len(received) < _RESPONSE_LIMIT and not deadline.expired:
                sock.settimeout(deadline.cap(deadline.remaining()))
                chunk = sock.recv(_RESPONSE_LIMIT - len(received))
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        except OSError as exc:
            if not received:
                return Answer("tcp", "error", exc.strerror or type(exc).__name__)
    evidence: dict[str, Any] = {"waited_s": round(time.monotonic() - started, 2)}
    parsed = parse_response(received) if received else None
    if parsed is not None:
        return Answer("tcp", "answered", "sip-response", evidence | parsed)
    if received:
        return Answer("tcp", "not-sip", "not-a-sip-response", evidence | {"heard": _shown_bytes(received)})
    return Answer("tcp", "no-response", "connected-but-silent", evidence)


def run(target: Target, deadline: Deadline) -> Finding:
    ip, port = target.endpoint()
    # UDP gets half the time at most, so that TCP is always tried.
    udp = over_udp(ip, port, deadline, min(_T1_SECONDS * 15, deadline.remaining() / 2))
    tcp = over_tcp(ip, port, deadline)
    evidence: dict[str, Any] = {
        "port": port,
        "udp": {"state": udp.state, "reason": udp.reason, **udp.evidence},
        "tcp": {"state": tcp.state, "reason": tcp.reason, **tcp.evidence},
    }
    return _finding(port, udp, tcp, evidence)


def _finding(port: int, udp: Answer, tcp: Answer, evidence: dict[str, Any]) -> Finding:
    if udp.answered and tcp.answered:
        return Finding(
            Status.PASS,
            f"SIP answers on UDP and TCP {port}: {_answer_text(udp)}",
            evidence,
        )
    answered = [answer for answer in (udp, tcp) if answer.answered]
    missing = [answer for answer in (udp, tcp) if not answer.answered]
    problems = "; ".join(f"{answer.transport.upper()} {_problem_text(answer)}" for answer in missing)
    forward = (
        f"Forward UDP and TCP {port} to the system and make sure its SIP server listens on both. If a firewall or "
        "intrusion-prevention system in front of the system drops SIP from unknown addresses, allow support's "
        "address; turn off any SIP ALG on the router."
    )
    if answered:
        return Finding(
            Status.WARN,
            f"SIP answers on {answered[0].transport.upper()} {port} ({_answer_text(answered[0])}), "
            f"but not on {problems}",
            evidence,
            forward,
        )
    return Finding(Status.FAIL, f"no SIP answer on {port}: {problems}", evidence, forward)


def _answer_text(answer: Answer) -> str:
    text = str(answer.evidence.get("status_line"))
    agent = answer.evidence.get("server") or answer.evidence.get("user_agent")
    return f"{text} from {agent}" if agent else text


def _problem_text(answer: Answer) -> str:
    sent = answer.evidence.get("requests_sent")
    waited = answer.evidence.get("waited_s")
    texts = {
        "filtered-or-open": (
            f"is filtered-or-open: no answer to {sent} OPTIONS requests in {waited:g} s (a firewall may drop them, "
            "or the SIP server ignores unknown addresses)"
            if sent and waited is not None
            else "is filtered-or-open: no answer"
        ),
        "closed": "is closed (ICMP port unreachable)"
        if answer.transport == "udp"
        else "is closed (connection refused)",
        "filtered": f"is filtered: no answer to the connection in {waited:g} s"
        if waited is not None
        else "is filtered",
        "not-sip": f"answers, but not SIP: {answer.evidence.get('heard', '')}",
        "no-response": f"accepts the connection but sent no SIP answer within {waited:g} s"
        if waited is not None
        else "accepts the connection but sent no SIP answer",
    }
    return texts.get(answer.state, f"failed: {answer.reason}")


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_LIMIT else text[: _SHOWN_LIMIT - 1] + "…"


def _shown_bytes(data: bytes) -> str:
    line = data.split(b"\n", 1)[0][:_SHOWN_LIMIT]
    return "".join(chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}" for byte in line)
