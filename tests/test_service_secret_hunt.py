"""A batch's report names where its probes left from, and is hunted for its own inventory's passwords before it
leaves the runner: one that would hold a password is not kept (JobFailed); one that holds none is. Real runs of the
vantage check (a route lookup, no packet) on loopback, which the policy here allows."""

from __future__ import annotations

from typing import Any

import pytest

from preflight.model import RunReport
from preflight.probes import registry
from preflight.profiles import load_profiles
from preflight.service.jobs import JobFailed, ProbeRequest, ProbeSettings, probe_inventories
from preflight.service.policy import TargetPolicy, parse_networks

# The host's name is in every report of it: a password equal to it would be in the report too.
NAME = "pbx-loopback-7"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> ProbeSettings:
    profiles: dict[str, Any] = dict(load_profiles(known_checks=frozenset(registry())))
    return ProbeSettings(
        profiles=profiles,
        policy=TargetPolicy(allowed=parse_networks("127.0.0.0/8"), own=frozenset()),
        known_hosts=tmp_path_factory.mktemp("known") / "known_hosts",
        timeout=5.0,
        tcp_method="connect",
    )


def _request(password: str | None) -> ProbeRequest:
    ssh = f"    ssh:\n      root_password: '{password}'\n" if password is not None else ""
    text = f"hosts:\n  - name: {NAME}\n    product: serverware\n    address: 127.0.0.1\n{ssh}"
    return ProbeRequest(text, {NAME: ("127.0.0.1",)}, only=("vantage",))


@pytest.mark.parametrize(
    ("password", "kept"),
    [
        (NAME, False),  # the report names the host: it would hold this password
        ("another-password-1", True),  # control: a password the report does not hold
        (None, True),  # control: nothing to hunt for
        (NAME[:7], True),  # control: too short to hunt for (it may be any word of a report)
    ],
)
def test_a_report_that_would_hold_its_inventorys_password_is_not_kept(
    settings: ProbeSettings, password: str | None, kept: bool
) -> None:
    (outcome,) = probe_inventories(settings, [_request(password)])
    if kept:
        assert isinstance(outcome, RunReport), outcome
        assert [host.name for host in outcome.hosts] == [NAME]
        assert outcome.prober_addresses == ("127.0.0.1",)  # where the probes of this inventory's hosts left from
    else:
        assert isinstance(outcome, JobFailed)
        assert "would have held a password" in str(outcome)


def test_inventories_run_together_each_name_where_their_own_probes_left_from(settings: ProbeSettings) -> None:
    other = ProbeRequest(
        "hosts:\n  - name: second\n    product: serverware\n    address: 127.0.0.2\n", {"second": ("127.0.0.2",)},
        only=("vantage",),
    )
    first, second = probe_inventories(settings, [_request(None), other])
    assert isinstance(first, RunReport) and isinstance(second, RunReport)
    assert [host.name for host in first.hosts] == [NAME] and [host.name for host in second.hosts] == ["second"]
    # A probe to any loopback address leaves from 127.0.0.1: each report names its own source, not the run's.
    assert first.prober_addresses == second.prober_addresses == ("127.0.0.1",)
