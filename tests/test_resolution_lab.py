"""public-ip and vantage on DNS names, end to end, with the lab's own hosts file in a private mount namespace.

Every name here resolves to documentation, benchmarking, private, loopback or unique-local addresses, or to
3ffe:1::5 (global-looking, but returned to IANA in 2006: it names no one). Against those only
`--only public-ip,vantage` runs, and neither check sends a packet: classification is arithmetic, and the
route lookup is a UDP connect. Only the lab container, which this run starts, receives traffic.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from preflight.resolution import source_address
from tests.deadlines import within_deadline
from tests.lab import LabTarget, lab_secrets, write_inventory
from tests.lab_resolver import LAB_DOMAIN, require_lab_resolver, resolve_in_namespace, run_preflight_with_names

GLOBAL_LOOKING_IPV6 = "3ffe:1::5"
NO_TRAFFIC = ["--only", "public-ip,vantage"]


@pytest.fixture(autouse=True)
def _lab_resolver() -> None:
    require_lab_resolver()


def _inventory(folder: Path, name: str, *, require_public_ip: bool = True, credentials: bool = False) -> Path:
    host: dict[str, object] = {
        "name": "named",
        "product": "pbxware",
        "address": f"{name}.{LAB_DOMAIN}",
        "require_public_ip": require_public_ip,
    }
    if credentials:
        host["gui"] = {"username": "admin", "password": "${GUI_PASSWORD}"}
        host["ssh"] = {"root_password": "${ROOT_PASSWORD}"}
    return write_inventory(folder, yaml.safe_dump({"hosts": [host]}, sort_keys=False))


def _names(**addresses: list[str]) -> dict[str, list[str]]:
    return {f"{name}.{LAB_DOMAIN}": listed for name, listed in addresses.items()}


def test_lab_hosts_file_returns_every_line_of_a_name(tmp_path: Path) -> None:
    names = _names(several=["10.20.30.40", "198.51.100.7", "2001:db8::7"])

    resolved = resolve_in_namespace(tmp_path, names, f"several.{LAB_DOMAIN}")

    assert sorted(resolved) == ["10.20.30.40", "198.51.100.7", "2001:db8::7"]


def test_name_resolving_to_a_private_address_fails_and_names_the_class(tmp_path: Path) -> None:
    run = run_preflight_with_names(
        tmp_path, _inventory(tmp_path, "private"), _names(private=["10.20.30.40"]), extra_args=NO_TRAFFIC
    )

    assert run.exit_code == 1
    public_ip = run.check("named", "public-ip")
    assert public_ip["status"] == "fail"
    assert "10.20.30.40 is private (RFC 1918)" in public_ip["summary"]
    assert public_ip["evidence"]["records"] == {"A": ["10.20.30.40"], "AAAA": []}
    assert public_ip["evidence"]["ranges"] == {"10.20.30.40": "10.0.0.0/8"}
    assert public_ip["remediation"]
    vantage = run.check("named", "vantage")
    assert vantage["status"] == "warn"
    assert "private-target" in vantage["evidence"]["signs"]
    assert run.host("named")["ip"] == "10.20.30.40"


def test_name_resolving_to_public_and_private_addresses_names_the_private_one(tmp_path: Path) -> None:
    names = _names(mixed=["10.20.30.40", GLOBAL_LOOKING_IPV6, "198.18.0.9"])

    run = run_preflight_with_names(tmp_path, _inventory(tmp_path, "mixed"), names, extra_args=NO_TRAFFIC)

    assert run.exit_code == 1
    public_ip = run.check("named", "public-ip")
    assert public_ip["status"] == "fail"
    assert "10.20.30.40 is private (RFC 1918)" in public_ip["summary"]
    assert "198.18.0.9 is benchmarking" in public_ip["summary"]
    assert f"public: {GLOBAL_LOOKING_IPV6}" in public_ip["summary"]
    assert sorted(public_ip["evidence"]["records"]["A"]) == ["10.20.30.40", "198.18.0.9"]
    assert public_ip["evidence"]["records"]["AAAA"] == [GLOBAL_LOOKING_IPV6]
    assert public_ip["evidence"]["classes"][GLOBAL_LOOKING_IPV6] == "global"
    remediation = public_ip["remediation"]
    assert "10.20.30.40" in remediation and "198.18.0.9" in remediation
    assert f"give support the public IP address {GLOBAL_LOOKING_IPV6} instead" in remediation


@pytest.mark.deadline
def test_name_that_does_not_resolve_fails_fast_with_a_remediation(tmp_path: Path) -> None:
    started = time.monotonic()
    run = run_preflight_with_names(tmp_path, _inventory(tmp_path, "nowhere"), _names(), extra_args=NO_TRAFFIC)

    within_deadline(time.monotonic() - started, 30)
    assert run.exit_code == 1
    public_ip = run.check("named", "public-ip")
    assert public_ip["status"] == "fail"
    assert f"nowhere.{LAB_DOMAIN} does not resolve" in public_ip["summary"]
    assert public_ip["evidence"]["resolved"] == []
    assert public_ip["evidence"]["records"] == {"A": [], "AAAA": []}
    assert "A or AAAA record" in public_ip["remediation"]
    vantage = run.check("named", "vantage")
    assert vantage["status"] == "skipped"
    assert "does not resolve" in vantage["summary"]
    assert run.host("named")["ip"] is None


@pytest.mark.parametrize(
    ("address", "expected_class"),
    [("2001:db8::7", "documentation"), ("fd12:3456::7", "unique-local (IPv6)")],
)
def test_ipv6_only_name_is_classified_and_becomes_the_hosts_ip(
    tmp_path: Path, address: str, expected_class: str
) -> None:
    run = run_preflight_with_names(
        tmp_path, _inventory(tmp_path, "sixonly"), _names(sixonly=[address]), extra_args=NO_TRAFFIC
    )

    public_ip = run.check("named", "public-ip")
    assert public_ip["status"] == "fail"
    assert f"{address} is {expected_class}" in public_ip["summary"]
    assert public_ip["evidence"]["records"] == {"A": [], "AAAA": [address]}
    assert run.host("named")["ip"] == address


def test_global_ipv6_only_name_passes_public_ip(tmp_path: Path) -> None:
    names = _names(sixonly=[GLOBAL_LOOKING_IPV6])

    run = run_preflight_with_names(tmp_path, _inventory(tmp_path, "sixonly"), names, extra_args=NO_TRAFFIC)

    public_ip = run.check("named", "public-ip")
    assert public_ip["status"] == "pass"
    assert "IPv6 only" in public_ip["summary"]
    assert run.host("named")["ip"] == GLOBAL_LOOKING_IPV6
    vantage = run.check("named", "vantage")
    # The prober's own IPv6 route decides this: a machine without one cannot say where it runs from.
    if source_address(GLOBAL_LOOKING_IPV6) is None:
        assert (vantage["status"], vantage["evidence"]["source_address"]) == ("warn", None)
    else:
        assert (vantage["status"], vantage["evidence"]["signs"]) == ("pass", [])
        assert vantage["evidence"]["source_address"] == source_address(GLOBAL_LOOKING_IPV6)
    assert run.exit_code == 0


def test_name_of_a_lab_container_on_the_docker_bridge(tmp_path: Path, pbx_target: LabTarget) -> None:
    inventory = _inventory(tmp_path, "pbx", credentials=True)

    run = run_preflight_with_names(
        tmp_path, inventory, _names(pbx=[pbx_target.ip]), lab_secrets(pbx_target), ["--only", "public-ip,vantage,tcp"]
    )

    assert run.host("named")["ip"] == pbx_target.ip
    public_ip = run.check("named", "public-ip")
    assert public_ip["status"] == "fail"
    assert f"{pbx_target.ip} is private (RFC 1918)" in public_ip["summary"]
    vantage = run.check("named", "vantage")
    assert vantage["status"] == "warn"
    assert vantage["evidence"]["signs"] == ["same-subnet", "private-target"]
    assert vantage["evidence"]["source_address"] == source_address(pbx_target.ip)
    assert "Run preflight from a machine outside" in vantage["remediation"]
    assert run.statuses("named")["tcp/2020"] == "pass"
