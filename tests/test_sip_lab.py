"""The optional pbxware-voip profile (`profiles: [voip]`): sip/5060 against kamailio from Debian in a lab target,
silent and closed ports made real with nftables in the target's own namespace, and rtp reported as skipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from preflight.inventory import load_inventory
from preflight.located_yaml import ConfigError
from preflight.probes.sip import parse_response
from preflight.profiles import load_profiles
from tests.lab import LabTarget, Run, lab_target, require_lab, run_preflight, write_inventory
from tests.lab_firewall import apply_ruleset

VOIP = ("--only", "sip,rtp", "--timeout", "4")


@pytest.fixture(scope="module")
def sip_target() -> Iterator[LabTarget]:
    require_lab()
    with lab_target(ssh_ports=(), env={"SIP": "on"}, wait_ports=(5060,)) as target:
        yield target


def _run(folder: Path, target: LabTarget, **host: Any) -> Run:
    entry = {"name": "lab", "product": "pbxware", "address": target.ip, "require_public_ip": False, **host}
    return run_preflight(folder, write_inventory(folder, yaml.safe_dump({"hosts": [entry]})), {}, VOIP)


def test_sip_answers_over_udp_and_tcp_and_rtp_is_skipped_with_the_reason(tmp_path: Path, sip_target: LabTarget) -> None:
    run = _run(tmp_path, sip_target, profiles=["voip"])

    sip = run.check("lab", "sip/5060")
    assert sip["status"] == "pass", sip
    assert sip["purpose"] == "SIP signalling (UDP and TCP)"
    for transport in ("udp", "tcp"):
        seen = sip["evidence"][transport]
        assert (seen["state"], seen["status_line"]) == ("answered", "SIP/2.0 200 Keepalive")
        assert seen["server"].startswith("kamailio (5.")
    assert sip["summary"].startswith("SIP answers on UDP and TCP 5060: SIP/2.0 200 Keepalive from kamailio")
    rtp = run.check("lab", "rtp")
    assert (rtp["status"], rtp["evidence"]["ports"]) == ("skipped", "10000-20000")
    assert "only a call can prove it" in rtp["summary"]
    assert "test call" in rtp["remediation"] and "UDP 10000-20000" in rtp["remediation"]
    # A skipped RTP range is not a failure: the host stays ready.
    assert run.exit_code == 0 and run.host("lab")["ready"] is True
    assert "rtp" in run.stdout


def test_without_the_voip_profile_no_voip_check_is_planned(tmp_path: Path, sip_target: LabTarget) -> None:
    run = _run(tmp_path, sip_target)

    assert run.host("lab")["checks"] == []


@pytest.mark.parametrize(
    ("dropped", "status", "udp_state", "tcp_state"),
    [("udp", "warn", "filtered-or-open", "answered"), ("udp, tcp", "fail", "filtered-or-open", "filtered")],
    ids=["udp-silent", "both-silent"],
)
def test_silent_udp_is_filtered_or_open_never_open(
    tmp_path: Path, sip_target: LabTarget, dropped: str, status: str, udp_state: str, tcp_state: str
) -> None:
    apply_ruleset(
        sip_target,
        "table inet preflight_sip_test {\n chain input {\n  type filter hook input priority 0;\n"
        f"  meta l4proto {{ {dropped} }} th dport 5060 drop\n }}\n}}\n",
    )
    try:
        run = _run(tmp_path, sip_target, profiles=["voip"])
    finally:
        apply_ruleset(sip_target, "delete table inet preflight_sip_test\n")

    sip = run.check("lab", "sip/5060")
    udp, tcp = sip["evidence"]["udp"], sip["evidence"]["tcp"]
    assert (sip["status"], udp["state"], tcp["state"]) == (status, udp_state, tcp_state)
    assert (udp["reason"], udp["requests_sent"]) == ("no-response", 3)
    assert "UDP is filtered-or-open: no answer to 3 OPTIONS requests" in sip["summary"]
    assert "open" not in sip["summary"].replace("filtered-or-open", "")
    assert "UDP and TCP 5060" in sip["remediation"]


def test_no_sip_server_is_closed_on_both_transports(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = _run(tmp_path, pbx_target, profiles=["voip"])

    sip = run.check("lab", "sip/5060")
    assert sip["status"] == "fail"
    assert (sip["evidence"]["udp"]["state"], sip["evidence"]["udp"]["reason"]) == ("closed", "icmp-port-unreachable")
    assert (sip["evidence"]["tcp"]["state"], sip["evidence"]["tcp"]["reason"]) == ("closed", "connection-refused")
    assert sip["summary"] == (
        "no SIP answer on 5060: UDP is closed (ICMP port unreachable); TCP is closed (connection refused)"
    )


def test_an_unknown_add_on_is_a_located_error(tmp_path: Path) -> None:
    host = {"name": "pbx", "product": "pbxware", "address": "pbx.example.test", "profiles": ["voip", "fax"]}
    path = write_inventory(tmp_path, yaml.safe_dump({"hosts": [host]}, sort_keys=False))

    with pytest.raises(ConfigError) as raised:
        load_inventory(path, load_profiles(), {})

    assert (
        str(raised.value) == "inventory.yaml:7: hosts[0].profiles[1]: no add-on profile 'fax' for pbxware (known: voip)"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"SIP/2.0 200 OK\r\nVia: x\r\nServer: Asterisk PBX 18\r\nContent-Length: 0\r\n\r\n",
            {"status_line": "SIP/2.0 200 OK", "status_code": 200, "server": "Asterisk PBX 18", "user_agent": None},
        ),
        (
            b"SIP/2.0 404 Not Found\r\nUser-Agent: PBXware 7\r\n\r\n",
            {"status_line": "SIP/2.0 404 Not Found", "status_code": 404, "server": None, "user_agent": "PBXware 7"},
        ),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", None),
        (b"\x16\x03\x01garbage", None),
    ],
    ids=["200-server", "404-user-agent", "http", "binary"],
)
def test_any_sip_answer_is_read_and_anything_else_is_not(data: bytes, expected: dict[str, Any] | None) -> None:
    assert parse_response(data) == expected
