"""A posted inventory's hosts in a range the operator allowed (a lab, a VPN) do not need a public IP: the intake sets
require_public_ip false on them, in the inventory and in the text sealed for the workers, whether or not the
client already said so; a public host keeps what it asked for. Pure logic: literal addresses, nothing is sent."""

from __future__ import annotations

from typing import Any

import pytest

from preflight.probes import registry
from preflight.profiles import load_profiles
from preflight.service.intake import from_document, load_sealed_text
from preflight.service.policy import TargetPolicy, parse_networks

LAB = "198.18.77.10"
PUBLIC = "1.1.1.1"  # data only: a global address, judged by the policy and never contacted
POLICY = TargetPolicy(allowed=parse_networks("198.18.77.0/24"), own=frozenset())


@pytest.fixture(scope="module")
def profiles() -> dict[str, Any]:
    return dict(load_profiles(known_checks=frozenset(registry())))


def _host(name: str, address: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "product": "serverware", "address": address, **more}


@pytest.mark.parametrize("said", [{}, {"require_public_ip": False}, {"require_public_ip": True}])
def test_a_host_in_an_allowed_range_needs_no_public_ip_whatever_it_said(profiles: dict[str, Any],
                                                                        said: dict[str, Any]) -> None:
    document = {"hosts": [_host("lab", LAB, **said), _host("public", PUBLIC), _host("public-no", PUBLIC,
                                                                                     require_public_ip=False)]}
    submission = from_document(document, profiles, POLICY, max_hosts=10)
    wanted = {"lab": False, "public": True, "public-no": False}  # the public hosts are the control
    assert {host.name: host.require_public_ip for host in submission.inventory.hosts} == wanted
    # The workers load the sealed text: it says the same.
    sealed = load_sealed_text(submission.text, profiles)
    assert {host.name: host.require_public_ip for host in sealed.hosts} == wanted
    assert sealed.hosts == submission.inventory.hosts
