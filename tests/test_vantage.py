"""vantage: a run from inside the target's network warns, with the prober's source address as evidence."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import yaml

from preflight.model import Status
from preflight.probes.vantage import LocalAddress, assess, decide, local_addresses
from preflight.resolution import source_address
from tests.lab import LabTarget, lab_inventory, run_preflight, write_inventory

OUTSIDE = [
    LocalAddress("lo", ipaddress.ip_interface("127.0.0.1/8")),
    LocalAddress("eth0", ipaddress.ip_interface("192.0.2.2/24")),
    LocalAddress("eth0", ipaddress.ip_interface("2001:db8:1::2/64")),
]
NO_TRAFFIC = ["--only", "public-ip,vantage"]


def _codes(target: str, source: str | None, require_public_ip: bool = False) -> list[str]:
    return [sign.code for sign in assess(target, source, OUTSIDE, require_public_ip).signs]


@pytest.mark.parametrize(
    ("target", "source", "require_public_ip", "expected"),
    [
        ("8.8.8.8", "192.0.2.2", True, []),
        ("2001:4860::8888", "2001:db8:1::2", True, []),
        ("192.0.2.2", "192.0.2.2", False, ["own-address"]),
        ("127.0.0.1", "127.0.0.1", False, ["own-address"]),
        ("127.0.0.53", "127.0.0.1", False, ["own-address"]),
        ("::1", "::1", False, ["own-address"]),
        ("0.0.0.0", "127.0.0.1", False, ["own-address"]),  # noqa: S104 - an address to classify, not to bind
        ("192.0.2.77", "192.0.2.2", False, ["same-subnet"]),
        ("2001:db8:1::77", "2001:db8:1::2", False, ["same-subnet"]),
        ("::ffff:192.0.2.77", "::ffff:192.0.2.2", False, ["same-subnet"]),
        ("10.9.9.9", "192.0.2.2", False, []),
        ("10.9.9.9", "192.0.2.2", True, ["private-target"]),
        ("100.64.1.1", "192.0.2.2", True, ["private-target"]),
        ("192.0.2.77", "192.0.2.2", True, ["same-subnet", "private-target"]),
        ("8.8.8.8", None, True, []),
    ],
)
def test_signs_that_the_prober_is_inside_the_targets_network(
    target: str, source: str | None, require_public_ip: bool, expected: list[str]
) -> None:
    assert _codes(target, source, require_public_ip) == expected


def test_route_from_outside_passes_and_records_the_source() -> None:
    finding = decide("8.8.8.8", {"8.8.8.8": assess("8.8.8.8", "192.0.2.2", OUTSIDE, True)})

    assert finding.status is Status.PASS
    assert finding.remediation == ""
    assert "leaves from 192.0.2.2 on eth0" in finding.summary
    assert finding.evidence["source_address"] == "192.0.2.2"
    assert finding.evidence["source_interface"] == "eth0"
    assert finding.evidence["source_network"] == "192.0.2.0/24"
    assert finding.evidence["signs"] == []


def test_same_subnet_warns_with_an_explanation_and_remediation() -> None:
    finding = decide("192.0.2.77", {"192.0.2.77": assess("192.0.2.77", "192.0.2.2", OUTSIDE, False)})

    assert finding.status is Status.WARN
    assert "the route to 192.0.2.77 leaves from 192.0.2.2 on eth0, in the same subnet 192.0.2.0/24" in finding.summary
    assert "prove nothing about forwarding" in finding.summary
    assert "Run preflight from a machine outside" in finding.remediation


def test_every_resolved_address_is_assessed_and_any_sign_warns() -> None:
    routes = {
        "8.8.8.8": assess("8.8.8.8", "192.0.2.2", OUTSIDE, False),
        "192.0.2.77": assess("192.0.2.77", "192.0.2.2", OUTSIDE, False),
    }

    finding = decide("8.8.8.8", routes)

    assert finding.status is Status.WARN
    assert finding.evidence["signs"] == ["same-subnet"]
    assert finding.evidence["routes"]["8.8.8.8"]["signs"] == []
    assert finding.evidence["routes"]["192.0.2.77"]["source_network"] == "192.0.2.0/24"


def test_no_route_to_the_probed_address_warns_that_the_vantage_is_unknown() -> None:
    finding = decide("2001:4860::8888", {"2001:4860::8888": assess("2001:4860::8888", None, OUTSIDE, True)})

    assert finding.status is Status.WARN
    assert "no route to 2001:4860::8888" in finding.summary
    assert finding.evidence["source_address"] is None
    assert finding.remediation


def test_no_route_to_a_second_address_alone_does_not_warn() -> None:
    routes = {
        "8.8.8.8": assess("8.8.8.8", "192.0.2.2", OUTSIDE, True),
        "2001:4860::8888": assess("2001:4860::8888", None, OUTSIDE, True),
    }

    assert decide("8.8.8.8", routes).status is Status.PASS


def test_local_addresses_reads_psutil_prefixes_and_zones() -> None:
    def entry(family: int, address: str, netmask: str | None) -> SimpleNamespace:
        return SimpleNamespace(family=family, address=address, netmask=netmask)

    interfaces = {
        "eth0": [
            entry(socket.AF_INET, "192.0.2.2", "255.255.255.0"),
            entry(socket.AF_INET6, "fd00::2", "ffff:ffff:ffff:ffff::"),
            entry(socket.AF_INET6, "fe80::1%eth0", "ffff:ffff:ffff:ffff::"),
            entry(socket.AF_PACKET, "02:fc:00:00:00:01", None),
        ],
        "tun0": [entry(socket.AF_INET, "198.18.0.1", None)],
    }

    assert [(held.interface_name, str(held.address)) for held in local_addresses(interfaces)] == [
        ("eth0", "192.0.2.2/24"),
        ("eth0", "fd00::2/64"),
        ("eth0", "fe80::1/64"),
        ("tun0", "198.18.0.1/32"),
    ]


def _loopback_inventory(folder: Path, address: str) -> Path:
    host = {"name": "here", "product": "pbxware", "address": address, "require_public_ip": False}
    return write_inventory(folder, yaml.safe_dump({"hosts": [host]}, sort_keys=False))


def _own_non_loopback_ipv4() -> tuple[str, str]:
    for interface_name, addresses in psutil.net_if_addrs().items():
        for entry in addresses:
            if entry.family == socket.AF_INET and not ipaddress.ip_address(entry.address).is_loopback:
                return interface_name, entry.address
    pytest.skip("this machine has no IPv4 address besides loopback")


@pytest.mark.parametrize(("address", "interface_name"), [("127.0.0.1", "lo"), ("::1", "lo")])
def test_loopback_target_warns_as_the_probers_own_address(tmp_path: Path, address: str, interface_name: str) -> None:
    run = run_preflight(tmp_path, _loopback_inventory(tmp_path, address), {}, NO_TRAFFIC)

    vantage = run.check("here", "vantage")
    assert vantage["status"] == "warn"
    assert vantage["evidence"]["signs"] == ["own-address"]
    assert (vantage["evidence"]["source_address"], vantage["evidence"]["source_interface"]) == (
        address,
        interface_name,
    )
    assert f"{address} is a loopback address of this machine" in vantage["summary"]
    assert vantage["remediation"]
    assert run.exit_code == 0


def test_probers_own_address_warns_and_names_its_interface(tmp_path: Path) -> None:
    interface_name, address = _own_non_loopback_ipv4()

    run = run_preflight(tmp_path, _loopback_inventory(tmp_path, address), {}, NO_TRAFFIC)

    vantage = run.check("here", "vantage")
    assert vantage["status"] == "warn"
    assert vantage["evidence"]["signs"] == ["own-address"]
    assert f"{address} is this machine's own address on {interface_name}" in vantage["summary"]


def test_lab_container_on_the_docker_bridge_warns_same_subnet(tmp_path: Path, pbx_target: LabTarget) -> None:
    run = run_preflight(tmp_path, lab_inventory(tmp_path, pbx_target, credentials=False), {}, NO_TRAFFIC)

    vantage = run.check("lab", "vantage")
    evidence = vantage["evidence"]
    assert vantage["status"] == "warn"
    assert evidence["signs"] == ["same-subnet"]
    assert evidence["source_address"] == source_address(pbx_target.ip)
    assert ipaddress.ip_address(pbx_target.ip) in ipaddress.ip_network(evidence["source_network"])
    assert ipaddress.ip_address(evidence["source_address"]) in ipaddress.ip_network(evidence["source_network"])
    held = {entry.address for entry in psutil.net_if_addrs()[evidence["source_interface"]]}
    assert evidence["source_address"] in held
    assert f"in the same subnet {evidence['source_network']}" in vantage["summary"]
