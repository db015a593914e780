"""tcp/<port> against a real lab host behind real nftables rules: every state and reason, with both methods.

The host: sshd on 2020, nginx on 443, nothing on 2222 (reset), 80 rejected with ICMP admin-prohibited,
81 dropped. nmap, run on the same host, must agree with every state.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import LabTarget, lab_target, require_lab, run_preflight, write_inventory
from tests.lab_firewall import apply_ruleset, nmap_states
from tests.requirements import needs_raw_sockets

RULESET = """
table inet lab {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 80 reject with icmp type admin-prohibited
        tcp dport 81 drop
    }
}
"""
TRUTH = {
    80: ("filtered", "icmp-unreachable"),
    81: ("filtered", "no-response"),
    443: ("open", "syn-ack"),
    2020: ("open", "syn-ack"),
    2222: ("closed", "reset"),
}
NMAP_REASONS = {"icmp-unreachable": "admin-prohibited"}
METHODS = ["connect", pytest.param("syn", marks=needs_raw_sockets)]


@pytest.fixture(scope="module")
def firewalled() -> Iterator[LabTarget]:
    require_lab()
    with lab_target(ssh_ports=(2020,)) as target:
        apply_ruleset(target, RULESET)
        yield target


def _inventory(folder: Path, target: LabTarget, copies: int = 1) -> Path:
    hosts = "".join(
        f"  - {{name: lab-{index}, product: serverware, address: {target.ip}, require_public_ip: false}}\n"
        for index in range(copies)
    )
    return write_inventory(folder, "hosts:\n" + hosts)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("concurrency", ["1", "4096"])
def test_every_state_and_reason_matches_the_firewall(
    firewalled: LabTarget, tmp_path: Path, method: str, concurrency: str
) -> None:
    run = run_preflight(
        tmp_path,
        _inventory(tmp_path, firewalled, copies=3),
        {},
        ["--only", "tcp", "--tcp-method", method, "--concurrency", concurrency],
    )

    assert run.exit_code == 1
    for host in ("lab-0", "lab-1", "lab-2"):
        seen = {port: run.check(host, f"tcp/{port}")["evidence"] for port in TRUTH}
        assert {port: (evidence["state"], evidence["reason"]) for port, evidence in seen.items()} == TRUTH
        assert {evidence["method"] for evidence in seen.values()} == {method}
    evidence = run.check("lab-0", "tcp/80")["evidence"]
    assert evidence["icmp"] == {"type": 3, "code": 13, "meaning": "admin-prohibited", "from": firewalled.ip}
    assert run.check("lab-0", "tcp/81")["evidence"]["probes"] == 2
    for port in (443, 2020, 2222, 80):
        assert run.check("lab-0", f"tcp/{port}")["evidence"]["rtt_ms"] is not None


@pytest.mark.parametrize("method", METHODS)
def test_each_non_open_state_says_what_was_seen_and_how_to_fix_it(
    firewalled: LabTarget, tmp_path: Path, method: str
) -> None:
    run = run_preflight(tmp_path, _inventory(tmp_path, firewalled), {}, ["--only", "tcp", "--tcp-method", method])

    summaries = {port: run.check("lab-0", f"tcp/{port}")["summary"] for port in TRUTH}
    probe = "SYN probes" if method == "syn" else "connection attempts"
    assert summaries[80] == (
        f"TCP 80 is filtered: {firewalled.ip} answered ICMP unreachable type 3 code 13 (admin-prohibited)"
    )
    assert summaries[81] == f"TCP 81 is filtered: no answer to 2 {probe}"
    assert summaries[2222] == f"TCP 2222 is closed: {firewalled.ip} answered with a reset"
    for port in (80, 81, 2222):
        remediation = run.check("lab-0", f"tcp/{port}")["remediation"]
        assert f"TCP {port}" in remediation and "forward" in remediation.lower()


@needs_raw_sockets
def test_syn_method_keeps_the_icmp_echo_reply_as_evidence_only(firewalled: LabTarget, tmp_path: Path) -> None:
    run = run_preflight(tmp_path, _inventory(tmp_path, firewalled), {}, ["--only", "tcp", "--tcp-method", "syn"])

    echo = run.check("lab-0", "tcp/443")["evidence"]["icmp_echo"]
    assert echo["replied"] is True and echo["rtt_ms"] >= 0


@pytest.mark.parametrize("scan_type", ["-sT", pytest.param("-sS", marks=needs_raw_sockets)])  # fmt: skip
def test_nmap_sees_the_same_states_and_reasons(firewalled: LabTarget, tmp_path: Path, scan_type: str) -> None:
    run = run_preflight(tmp_path, _inventory(tmp_path, firewalled), {}, ["--only", "tcp"])

    ours = {
        port: (evidence["state"], NMAP_REASONS.get(evidence["reason"], evidence["reason"]))
        for port in TRUTH
        for evidence in [run.check("lab-0", f"tcp/{port}")["evidence"]]
    }
    theirs = nmap_states(firewalled.ip, list(TRUTH), scan_type)
    if scan_type == "-sT":
        # nmap's connect scan sees only errno: a reset is conn-refused, and admin-prohibited is host-unreach
        # (EHOSTUNREACH). preflight reads the ICMP message itself (IP_RECVERR), so only the states compare.
        assert {port: state for port, (state, _) in ours.items()} == {
            port: state for port, (state, _) in theirs.items()
        }
    else:
        assert ours == theirs
