"""The scanner's promises, each against real packets in a two-namespace lab (tests/scan_lab.py).

- Stray and spoofed replies cannot answer for a port: only a reply to the probe itself (its keyed sequence number,
  its source port, its endpoint) settles a port's state.
- Overload becomes `unknown`, never `filtered`: answers the kernel dropped are asked again, and really filtered
  ports stay filtered.
- Timing follows each host's own round trip: a slow host's ports are retried later than a fast host's, and none of
  them is called filtered.
- Every port is settled within --timeout, and the run's tcp checks say so in their durations.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from preflight import cli, portscan
from preflight.portscan import PortVerdict, scan, syn
from preflight.portscan.timing import INITIAL_TIMEOUT
from tests.deadlines import within_deadline
from tests.lab import run_preflight, write_inventory
from tests.scan_lab import (
    Rule,
    ScanLab,
    lab_address,
    listeners,
    require_scan_lab,
    responder,
    run_inside,
    scan_lab,
)


@pytest.fixture(autouse=True)
def _root_and_tools() -> None:
    require_scan_lab()


# --- stray and spoofed replies ------------------------------------------------------------------------------------

T1, T2, NOT_SCANNED = lab_address(10), lab_address(11), lab_address(99)
# What each endpoint really is, and what the spoofer sends whenever it sees a SYN for it ("wrong": replies with wrong
# acknowledgment numbers, to wrong scanner ports, from wrong addresses and ports, ICMP errors quoting probes never
# sent). The real answers leave 20 ms after the spoofs, so every spoof reaches the scanner first.
SPOOFED = {
    (T1, 1001): (Rule("syn-ack", 0.02, spoof="wrong", impostors=((T2, 1003), (T1, 1003), (NOT_SCANNED, 1001))), "open"),
    (T1, 1002): (Rule("reset", 0.02, spoof="wrong", impostors=((T2, 1003), (T1, 1001))), "closed"),
    (T1, 1003): (Rule(None, spoof="wrong", impostors=((T2, 1003), (T1, 1002))), "filtered"),
    (T2, 1003): (Rule(None, spoof="wrong", impostors=((T1, 1003),)), "filtered"),
}
# The control: the same spoofer, with the right acknowledgment (as only an on-path spoofer can know it), does decide.
CONTROL = {
    (T1, 1011): (Rule(None, spoof="right-syn-ack"), ("open", "syn-ack")),
    (T1, 1012): (Rule("syn-ack", 0.02, spoof="right-reset"), ("closed", "reset")),
    (T1, 1013): (Rule(None, spoof="right-icmp"), ("filtered", "icmp-unreachable")),
}
TRUE_REASONS = {"open": "syn-ack", "closed": "reset", "filtered": "no-response"}


@pytest.fixture(scope="module")
def spoofing_lab() -> Iterator[ScanLab]:
    require_scan_lab()
    with scan_lab([T1, T2]) as lab:
        yield lab


def test_spoofed_and_stray_replies_change_no_port_state(spoofing_lab: ScanLab, tmp_path: Path) -> None:
    rules = {endpoint: rule for endpoint, (rule, _) in (SPOOFED | CONTROL).items()}
    with responder(spoofing_lab, rules, tmp_path) as spoofer:
        ports = run_inside(spoofing_lab.scanner, lambda: scan(list(rules), 3, "syn").ports)
        seen = {(syn.ip, syn.port) for syn in spoofer.syns()}

    assert seen == set(rules), "the spoofer did not see a SYN for every endpoint, so it sent nothing for some"
    assert {endpoint: (ports[endpoint].state, ports[endpoint].reason) for endpoint in SPOOFED} == {
        endpoint: (state, TRUE_REASONS[state]) for endpoint, (_, state) in SPOOFED.items()
    }
    # The control proves the spoofer's packets reach the scanner and would be believed if they matched a probe.
    assert {endpoint: (ports[endpoint].state, ports[endpoint].reason) for endpoint in CONTROL} == {
        endpoint: expected for endpoint, (_, expected) in CONTROL.items()
    }
    icmp = ports[(T1, 1013)].icmp
    assert icmp is not None and icmp.meaning == "admin-prohibited"


# --- overload -----------------------------------------------------------------------------------------------------

OVERLOAD_HOSTS = 60
REALLY_FILTERED = [(lab_address(index), 81) for index in (1, 2, 3)]
# Short, so that the calmest pass (one probe at a time) settles the really filtered ports quickly.
OVERLOAD_TIMEOUT = 1.0


def _overload_truth() -> dict[tuple[str, int], str]:
    truth: dict[tuple[str, int], str] = {}
    for index in range(1, OVERLOAD_HOSTS + 1):
        truth |= {(lab_address(index), 80): "open", (lab_address(index), 2222): "closed"}
    return truth | dict.fromkeys(REALLY_FILTERED, "filtered")


@pytest.fixture(scope="module")
def overload_lab() -> Iterator[ScanLab]:
    require_scan_lab()
    with scan_lab([lab_address(index) for index in range(1, OVERLOAD_HOSTS + 1)]) as lab:
        drops = ", ".join(f"{ip} . {port}" for ip, port in REALLY_FILTERED)
        lab.nft(f"""
table inet scanlab_filter {{
    chain input {{
        type filter hook input priority 0; policy accept;
        ip daddr . tcp dport {{ {drops} }} drop
    }}
}}
""")
        with listeners(lab, [80]):
            yield lab


@dataclass
class _Passes:
    """What each SYN engine of one scan did: how many endpoints it probed, and how many answers the kernel dropped."""

    probed: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)


@pytest.fixture
def starved_receive_queue(monkeypatch: pytest.MonkeyPatch) -> _Passes:
    """Every SYN engine gets a receive buffer of a few packets, so the kernel drops most answers of a big window."""
    monkeypatch.setattr(syn, "_RECEIVE_BUFFER_BYTES", 1)
    passes = _Passes()
    original_scan, original_close = syn.SynEngine.scan, syn.SynEngine.close

    def counted_scan(engine: syn.SynEngine, endpoints: Sequence[tuple[str, int]]) -> dict[tuple[str, int], PortVerdict]:
        passes.probed.append(len(endpoints))
        return original_scan(engine, endpoints)

    def counted_close(engine: syn.SynEngine) -> None:
        passes.dropped.append(engine.dropped)
        original_close(engine)

    monkeypatch.setattr(syn.SynEngine, "scan", counted_scan)
    monkeypatch.setattr(syn.SynEngine, "close", counted_close)
    return passes


def test_answers_dropped_under_overload_are_asked_again_and_filtered_ports_stay_filtered(
    overload_lab: ScanLab, starved_receive_queue: _Passes
) -> None:
    truth = _overload_truth()

    ports = run_inside(overload_lab.scanner, lambda: scan(list(truth), 2 * OVERLOAD_TIMEOUT, "syn").ports)

    passes = starved_receive_queue
    assert passes.dropped[0] > 0, "the first pass did not overflow the receive queue, so this test proved nothing"
    # Silence after drops proves nothing: the silent endpoints (the dropped answers and the really filtered ports)
    # were probed again on calmer passes, until a pass lost nothing.
    assert len(passes.probed) >= 2 and passes.probed[1] > len(REALLY_FILTERED), passes
    assert passes.dropped[-1] == 0, passes
    assert _states(ports) == truth
    counts = Counter(verdict.state for verdict in ports.values())
    assert counts == {"open": OVERLOAD_HOSTS, "closed": OVERLOAD_HOSTS, "filtered": len(REALLY_FILTERED)}
    assert {ports[endpoint].reason for endpoint in REALLY_FILTERED} == {"no-response"}
    # The calm passes keep what the first one learned of each host's round trip: a really filtered port is retried
    # after its host's RTT, not after the 1 s a host that never answered is given.
    for endpoint in REALLY_FILTERED:
        retry_after_ms = ports[endpoint].retry_after_ms
        assert retry_after_ms is not None and retry_after_ms < 800, ports[endpoint]


def test_overload_that_never_calms_reports_unknown_and_never_filtered(
    overload_lab: ScanLab, starved_receive_queue: _Passes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Every calmer pass is as crowded as the first, so the drops never stop.
    monkeypatch.setattr(portscan, "CALM_WINDOWS", (portscan.SYN_WINDOW,))
    truth = _overload_truth()

    ports = run_inside(overload_lab.scanner, lambda: scan(list(truth), OVERLOAD_TIMEOUT, "syn").ports)

    passes = starved_receive_queue
    assert len(passes.probed) == 2 and all(dropped > 0 for dropped in passes.dropped), passes
    unknown = {endpoint for endpoint, verdict in ports.items() if verdict.state == "unknown"}
    # Only a dropped answer or a really filtered port can be silent; neither is called filtered while drops go on.
    assert {endpoint for endpoint, verdict in ports.items() if verdict.state == "filtered"} == set()
    assert set(REALLY_FILTERED) <= unknown
    assert len(unknown) > len(REALLY_FILTERED), "no answer was lost in the second pass"
    assert {endpoint: state for endpoint, state in _states(ports).items() if endpoint not in unknown} == {
        endpoint: state for endpoint, state in truth.items() if endpoint not in unknown
    }
    assert {ports[endpoint].reason for endpoint in unknown} == {"prober-overloaded"}
    counts = Counter(verdict.state for verdict in ports.values())
    assert counts["unknown"] == len(unknown) and sum(counts.values()) == len(truth)


def test_a_port_of_unknown_state_is_reported_as_an_error_of_this_machine(
    overload_lab: ScanLab, starved_receive_queue: _Passes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same never-calming overload, through `preflight check`: an unknown port is an error, never a fail."""
    monkeypatch.setattr(portscan, "CALM_WINDOWS", (portscan.SYN_WINDOW,))
    hosts = "".join(
        f"  - {{name: h{index}, address: {lab_address(index)}}}\n" for index in range(1, OVERLOAD_HOSTS + 1)
    )
    inventory = write_inventory(tmp_path, "defaults: {product: serverware, require_public_ip: false}\nhosts:\n" + hosts)
    report_path = tmp_path / "report.json"
    arguments = ["check", str(inventory), "--only", "tcp", "--tcp-method", "syn", "--timeout", str(OVERLOAD_TIMEOUT)]

    exit_code = run_inside(overload_lab.scanner, lambda: cli.main([*arguments, "--json", str(report_path)]))

    checks = [check for host in json.loads(report_path.read_text())["hosts"] for check in host["checks"]]
    seen = Counter(
        (check["status"], check["evidence"].get("state"), check["evidence"].get("reason")) for check in checks
    )
    assert exit_code == 1, seen
    unknown = [check for check in checks if check["evidence"].get("state") == "unknown"]
    assert unknown, f"no port was left unknown: the overload did not last ({seen})"
    for check in unknown:
        assert check["status"] == "error", check
        assert check["evidence"]["reason"] == "prober-overloaded"
        assert check["summary"].endswith(
            "state unknown: this machine dropped answers faster than preflight could read them"
        )
    # The really filtered ports cannot be told from lost answers while drops go on: unknown, never filtered.
    assert not [check for check in checks if check["evidence"].get("state") == "filtered"], seen


# --- adaptive timing ----------------------------------------------------------------------------------------------

# name: (address, how late it answers). The slow host is the 200 ms; the slower one, 400 ms, is further
# away than a fast host's retries (100 ms, then 200 ms) reach, so a scanner timing it by the fast host calls it filtered.
HOSTS = {"fast": (lab_address(20), 0.0), "slow": (lab_address(21), 0.2), "slower": (lab_address(22), 0.4)}
# Ports 80, 443 and 2222 answer the first SYN and teach the scanner each host's round trip; 81 and 2020 lose their
# first SYN (the responder ignores it) and answer the retry, so the wait before each retry can be seen.
TEACHING = {80: "syn-ack", 443: "syn-ack", 2222: "reset"}
LOSSY = (81, 2020)
TRUTH = {80: "open", 443: "open", 2222: "closed", 81: "open", 2020: "open"}
# The slow hosts drop ping, as many do: only their TCP answers can teach the scanner their round trips.
NO_ECHO_FROM_SLOW_HOSTS = f"""
table inet scanlab_echo {{
    chain output {{
        type filter hook output priority 0; policy accept;
        ip saddr {{ {HOSTS["slow"][0]}, {HOSTS["slower"][0]} }} icmp type echo-reply drop
    }}
}}
"""


def _timing_rules() -> dict[tuple[str, int], Rule]:
    rules: dict[tuple[str, int], Rule] = {}
    for ip, delay in HOSTS.values():
        rules |= {(ip, port): Rule(answer, delay) for port, answer in TEACHING.items()}
        rules |= {(ip, port): Rule("syn-ack", delay, ignore_first=True) for port in LOSSY}
    return rules


@pytest.mark.deadline
def test_retry_waits_follow_each_hosts_round_trip_and_a_slow_host_is_never_filtered(tmp_path: Path) -> None:
    with scan_lab([ip for ip, _ in HOSTS.values()]) as lab:
        lab.nft(NO_ECHO_FROM_SLOW_HOSTS)
        with responder(lab, _timing_rules(), tmp_path) as lab_responder:
            hosts = "".join(f"  - {{name: {name}, address: {ip}}}\n" for name, (ip, _) in HOSTS.items())
            inventory = write_inventory(
                tmp_path, "defaults: {product: serverware, require_public_ip: false}\nhosts:\n" + hosts
            )
            run = run_preflight(
                tmp_path, inventory, {}, ["--only", "tcp", "--tcp-method", "syn", "--timeout", "5"],
                command=[*lab.exec_prefix(), sys.executable, "-m", "preflight"],
            )  # fmt: skip
            syn_times = {
                (name, port): lab_responder.syn_times(ip, port) for name, (ip, _) in HOSTS.items() for port in LOSSY
            }

    evidence = {(host, port): run.check(host, f"tcp/{port}")["evidence"] for host in HOSTS for port in TRUTH}
    assert {key: value["state"] for key, value in evidence.items()} == {
        (host, port): state for host in HOSTS for port, state in TRUTH.items()
    }
    rtt_ms = {}
    for host, (_, delay) in HOSTS.items():
        # A port that answers its first SYN is asked once: the scanner waited for the host instead of retrying early
        # (with a retry in flight, the answer would teach nothing, and rtt_ms would be timed from the retry).
        assert {port: evidence[(host, port)]["probes"] for port in TEACHING} == dict.fromkeys(TEACHING, 1), host
        rtt_ms[host] = min(evidence[(host, port)]["rtt_ms"] for port in TEACHING)
        assert rtt_ms[host] >= delay * 1000, f"the responder did not delay {host}'s answers"
    retry_after = {}
    for (host, port), times in syn_times.items():
        assert len(times) == 2, f"{host} port {port}: the responder saw {len(times)} SYNs, not a first and a retry"
        assert evidence[(host, port)]["probes"] == 2
        # The evidence says how long the first probe waited; the lab saw the same gap between the two SYNs.
        waited_ms = evidence[(host, port)]["retry_after_ms"]
        assert abs(waited_ms - (times[1] - times[0]) * 1000) < 50, (host, port, waited_ms, times)
        retry_after[(host, port)] = waited_ms
    for port in LOSSY:
        # The fast host's lost SYN is sent again before the slow host could even have answered ...
        within_deadline(retry_after[("fast", port)] / 1000, rtt_ms["slow"] / 1000, f"the fast host's retry of {port}")
        # ... and each slow host's only after its own round trip, learned from its answers; the slow one's sooner
        # than the 1 s a host that never answered waits.
        assert rtt_ms["slow"] <= retry_after[("slow", port)], (retry_after, rtt_ms)
        within_deadline(retry_after[("slow", port)] / 1000, INITIAL_TIMEOUT, f"the slow host's retry of {port}")
        assert rtt_ms["slower"] <= retry_after[("slower", port)], (retry_after, rtt_ms)


# --- settled within --timeout -------------------------------------------------------------------------------------

FILTERED_HOSTS = 200  # x 5 SERVERware ports = 1,000 filtered tcp checks
DROP_EVERYTHING = """
table inet scanlab_drop {
    chain input {
        type filter hook input priority 0; policy accept;
        iif lo accept
        meta l4proto { tcp, icmp } drop
    }
}
"""


@pytest.mark.deadline
@pytest.mark.parametrize("method", ["syn", "connect"])
def test_a_thousand_filtered_ports_each_settle_within_the_timeout(tmp_path: Path, method: str) -> None:
    timeout = 2.0
    addresses = [lab_address(1 + index) for index in range(FILTERED_HOSTS)]
    with scan_lab(addresses) as lab:
        lab.nft(DROP_EVERYTHING)
        lines = [f"  - {{name: h{index}, address: {ip}}}" for index, ip in enumerate(addresses)]
        inventory = write_inventory(
            tmp_path, "defaults: {product: serverware, require_public_ip: false}\nhosts:\n" + "\n".join(lines) + "\n"
        )
        run = run_preflight(
            tmp_path, inventory, {}, ["--only", "tcp", "--tcp-method", method, "--timeout", str(timeout)],
            command=[*lab.exec_prefix(), sys.executable, "-m", "preflight"],
        )  # fmt: skip

    checks = [check for host in run.report["hosts"] for check in host["checks"] if check["id"].startswith("tcp/")]
    assert len(checks) == 1000
    assert {(check["evidence"]["state"], check["evidence"]["reason"]) for check in checks} == {
        ("filtered", "no-response")
    }
    assert {check["evidence"]["probes"] for check in checks} == {2}
    slowest = max(check["duration_ms"] for check in checks)
    within_deadline(slowest / 1000, timeout + 0.5, f"the slowest of 1,000 filtered tcp checks (--timeout {timeout:g})")


@pytest.mark.deadline
def test_a_short_timeout_still_sends_the_retry_before_calling_a_port_filtered() -> None:
    timeout = 0.6  # less than the 1 s a host that never answered is first given (RFC 6298)
    endpoints = [(lab_address(1), port) for port in (80, 81, 443, 2020, 2222)]
    with scan_lab([lab_address(1)]) as lab:
        lab.nft(DROP_EVERYTHING)
        started = time.monotonic()
        ports = run_inside(lab.scanner, lambda: scan(endpoints, timeout, "syn").ports)
        took = time.monotonic() - started

    assert {(verdict.state, verdict.probes) for verdict in ports.values()} == {("filtered", 2)}
    for verdict in ports.values():
        # The first probe had half the time, the retry the rest.
        assert verdict.retry_after_ms is not None and timeout * 500 <= verdict.retry_after_ms < timeout * 1000, verdict
    within_deadline(took, timeout + 0.5, f"a scan of 5 filtered ports (timeout {timeout:g})")


def _states(ports: Mapping[tuple[str, int], PortVerdict]) -> dict[tuple[str, int], str]:
    return {endpoint: verdict.state for endpoint, verdict in ports.items()}
