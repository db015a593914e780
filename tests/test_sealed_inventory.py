"""The text the service seals for its jobs: JSON of the posted inventory, read back without YAML or lines to track,
into the very inventory the intake validated; checks sealed as YAML by an earlier release still load the same.
Pure logic: literal addresses, nothing is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from preflight.probes import registry
from preflight.profiles import load_profiles
from preflight.service import intake
from preflight.service.intake import IntakeError, from_document, load_sealed_text
from preflight.service.policy import TargetPolicy, parse_networks

POLICY = TargetPolicy(allowed=parse_networks("198.18.77.0/24"), own=frozenset())
# Passwords a YAML or shell round trip would change: `$`, `${X}`, quotes, a colon, a hash, non-ASCII, a number.
ROOT, SECOND, GUI = "pa$$w${HOME}rd: #'\"", "Žižek-2222 ñ", "12345678"


@pytest.fixture(scope="module")
def profiles() -> dict[str, Any]:
    return dict(load_profiles(known_checks=frozenset(registry())))


def _document() -> dict[str, Any]:
    return {
        "defaults": {"product": "serverware", "gui": {"username": "admin", "password": GUI}},
        "hosts": [
            {"name": "sw1", "address": "198.18.77.10", "ssh": {"root_password": ROOT,
                                                                "per_port": {"2222": {"root_password": SECOND}}}},
            {"name": "sw2", "address": "198.18.77.11", "ssh": {"root_password": ROOT}, "require_public_ip": False},
        ],
    }


def test_the_sealed_text_is_json_and_loads_into_the_inventory_the_intake_validated(profiles: dict[str, Any]) -> None:
    submission = from_document(_document(), profiles, POLICY, max_hosts=10)

    assert json.loads(submission.text)["hosts"][0]["name"] == "sw1"
    sealed = load_sealed_text(submission.text, profiles)
    assert sealed.hosts == submission.inventory.hosts
    assert sealed.sha256 == submission.inventory.sha256
    first = sealed.hosts[0]
    # Taken exactly as posted: the service expands no ${VAR}, and `$$` stays two dollars.
    assert first.ssh.root_password is not None and first.ssh.root_password.get_secret_value() == ROOT
    assert first.ssh.per_port[2222].root_password is not None
    assert first.ssh.per_port[2222].root_password.get_secret_value() == SECOND
    assert first.gui.password is not None and first.gui.password.get_secret_value() == GUI


def test_a_check_sealed_as_yaml_by_an_earlier_release_loads_the_same(profiles: dict[str, Any]) -> None:
    submission = from_document(_document(), profiles, POLICY, max_hosts=10)
    # What the earlier release sealed: the same document as YAML, `$` doubled, per_port keys as numbers.
    document = json.loads(submission.text)
    for host in document["hosts"]:
        per_port = host.get("ssh", {}).get("per_port")
        if per_port:
            host["ssh"]["per_port"] = {int(port): value for port, value in per_port.items()}
    legacy = yaml.dump(document, Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True)
    assert not legacy.startswith("{")

    loaded = load_sealed_text(legacy, profiles)

    assert loaded.hosts == submission.inventory.hosts
    assert loaded.sha256 == submission.inventory.sha256
    assert intake.sealed_document(legacy) == intake.sealed_document(submission.text)


def test_a_duplicate_name_in_a_posted_inventory_names_the_first_host_not_a_line(profiles: dict[str, Any]) -> None:
    document = _document()
    document["hosts"][1]["name"] = "sw1"

    with pytest.raises(IntakeError) as raised:
        from_document(document, profiles, POLICY, max_hosts=10)

    assert raised.value.field == "hosts[1].name"
    assert raised.value.reason == "duplicate host name 'sw1' (first used by hosts[0])"
    # The control: the same inventory with its own names is taken.
    assert len(from_document(_document(), profiles, POLICY, max_hosts=10).inventory.hosts) == 2
