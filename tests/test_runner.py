"""The runner's guarantees, with stand-in probes: isolation, deadlines, prerequisites, redaction."""

from __future__ import annotations

import threading
import time
from dataclasses import fields, replace
from pathlib import Path

import pytest

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.options import RunOptions
from preflight.plan import HostPlan
from preflight.probes import Probe
from preflight.profiles import load_profiles
from preflight.runner import run_plan
from preflight.target import Target

PROFILES = load_profiles()
ROOT_PASSWORD = "runner-test-root-secret"


def _host(name: str) -> Host:
    return Host.model_validate(
        {"name": name, "product": "pbxware", "address": "127.0.0.1", "ssh": {"root_password": ROOT_PASSWORD}},
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )


def _target(host: Host, check_id: str, needs: str | None = None) -> Target:
    return Target(
        check_id=check_id, requirement="stand-in", host=host, profile=PROFILES["pbxware"], port=1, needs=needs
    )


def _passes(target: Target, deadline: Deadline) -> Finding:
    return Finding(Status.PASS, "fine")


def _fails(target: Target, deadline: Deadline) -> Finding:
    return Finding(Status.FAIL, "broken", {"state": "closed"}, "fix it")


def _raises_with_secret(target: Target, deadline: Deadline) -> Finding:
    raise RuntimeError(f"library said: bad password {ROOT_PASSWORD}")


stop_hanging = threading.Event()


def _hangs(target: Target, deadline: Deadline) -> Finding:
    stop_hanging.wait(30)
    return Finding(Status.PASS, "too late")


def _slow(target: Target, deadline: Deadline) -> Finding:
    time.sleep(min(1.0, deadline.remaining()))
    return Finding(Status.PASS, "slow but fine")


@pytest.fixture
def stand_in_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    probes = {
        kind: Probe(kind=kind, plan=lambda host, profile: [], run=run)
        for kind, run in {
            "passes": _passes,
            "fails": _fails,
            "raises": _raises_with_secret,
            "hangs": _hangs,
            "slow": _slow,
        }.items()
    }
    monkeypatch.setattr("preflight.runner.registry", lambda: probes)


@pytest.mark.usefixtures("stand_in_probes")
def test_a_probe_that_raises_becomes_an_error_without_the_secret_and_other_hosts_are_kept() -> None:
    broken, healthy = _host("broken"), _host("healthy")
    report = run_plan(
        [HostPlan(broken, (_target(broken, "raises/1"),)), HostPlan(healthy, (_target(healthy, "passes/1"),))],
        timeout=5,
        concurrency=2,
    )

    error = report.hosts[0].checks[0]
    assert error.status is Status.ERROR
    assert "RuntimeError" in error.summary and ROOT_PASSWORD not in error.summary
    assert error.remediation
    assert report.hosts[1].checks[0].status is Status.PASS
    assert [host.ready for host in report.hosts] == [False, True]


@pytest.mark.usefixtures("stand_in_probes")
@pytest.mark.deadline
def test_a_probe_that_ignores_its_deadline_is_abandoned_as_an_error() -> None:
    host = _host("slow")
    try:
        report = run_plan(
            [HostPlan(host, (_target(host, "hangs/1"), _target(host, "passes/2")))], timeout=0.2, concurrency=1
        )
    finally:
        stop_hanging.set()

    statuses = {check.id: (check.status, check.summary) for check in report.hosts[0].checks}
    assert statuses["hangs/1"] == (Status.ERROR, "did not finish within 0.2s")
    assert statuses["passes/2"][0] is Status.PASS


@pytest.mark.usefixtures("stand_in_probes")
def test_a_check_whose_prerequisite_failed_is_skipped_with_remediation() -> None:
    host = _host("pbx")
    report = run_plan(
        [HostPlan(host, (_target(host, "fails/1"), _target(host, "passes/1", needs="fails/1")))],
        timeout=5,
        concurrency=1,
    )

    skipped = report.hosts[0].checks[1]
    assert skipped.status is Status.SKIPPED
    assert skipped.summary == "not attempted: fails/1 is closed"
    assert skipped.remediation == "Fix fails/1 first."


@pytest.mark.usefixtures("stand_in_probes")
def test_a_check_whose_prerequisite_was_not_selected_still_runs() -> None:
    host = _host("pbx")
    report = run_plan([HostPlan(host, (_target(host, "passes/1", needs="tcp/1"),))], timeout=5, concurrency=1)

    assert report.hosts[0].checks[0].status is Status.PASS


@pytest.mark.usefixtures("stand_in_probes")
def test_results_keep_the_plan_order_whatever_order_they_finish_in() -> None:
    hosts = [_host(f"host-{index}") for index in range(20)]
    report = run_plan([HostPlan(host, (_target(host, "passes/1"),)) for host in hosts], timeout=5, concurrency=8)

    assert [host.name for host in report.hosts] == [host.name for host in hosts]


@pytest.mark.usefixtures("stand_in_probes")
def test_a_slow_host_does_not_hold_up_the_others() -> None:
    slow, fast = _host("slow"), _host("fast")
    finished: list[str] = []

    report = run_plan(
        [HostPlan(slow, (_target(slow, "slow/1"),)), HostPlan(fast, (_target(fast, "passes/1"),))],
        timeout=5,
        concurrency=2,
        on_host_done=lambda host: finished.append(host.name),
    )

    assert finished == ["fast", "slow"]
    assert [host.name for host in report.hosts] == ["slow", "fast"]


def test_a_target_under_options_or_resolved_keeps_every_other_field() -> None:
    profile = PROFILES["pbxware"]
    target = Target(
        check_id="tcp/2020",
        requirement="stand-in",
        host=_host("pbx"),
        profile=profile,
        port=2020,
        needs="public-ip",
        ip="192.0.2.1",
        addresses=("192.0.2.1",),
        resolution_error="an earlier lookup failed",
        options=RunOptions(tcp_method="connect"),
    )
    options = RunOptions(tcp_method="syn", strict_host_keys=True)

    assert target.with_options(options) == replace(target, options=options)
    assert target.resolved(None, (), "no such host") == replace(
        target, ip=None, addresses=(), resolution_error="no such host"
    )
    # Only a field with a default can be left out of a copy silently: each of them is set off its default here.
    defaults = Target(check_id="", requirement="", host=target.host, profile=profile)
    with_defaults = [
        field.name for field in fields(Target) if field.name not in ("check_id", "requirement", "host", "profile")
    ]
    assert [name for name in with_defaults if getattr(target, name) == getattr(defaults, name)] == []
    required = profile.port(2020)
    assert required is not None and target.purpose == required.purpose != ""
