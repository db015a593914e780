"""preflight.vantages: one vantage's batches merged, several vantages combined, the verdict and the matrix rows."""

from __future__ import annotations

from typing import Any

import pytest

from preflight import vantages


def _check(check_id: str, status: str, state: str | None = None, reason: str | None = None) -> dict[str, Any]:
    evidence = {key: value for key, value in (("state", state), ("reason", reason)) if value is not None}
    return {"id": check_id, "status": status, "evidence": evidence}


def _result(name: str, *checks: dict[str, Any]) -> dict[str, Any]:
    ready = not any(check["status"] in ("fail", "error") for check in checks)
    return {"name": name, "ip": "203.0.113.7", "ready": ready, "checks": list(checks)}


OPEN = _check("tcp/2020", "pass", "open", "syn-ack")
FILTERED = _check("tcp/2020", "fail", "filtered", "no-response")
ROOT_OK = _check("ssh-root/2020", "pass")
ROOT_SKIPPED = _check("ssh-root/2020", "skipped")
GUI_FAIL = _check("gui-login/443", "fail")


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([_result("eu", OPEN), _result("us", OPEN)], "ready from eu, us"),
        ([_result("eu", OPEN), _result("us", FILTERED)], "ready from eu; NOT ready from us: tcp/2020 filtered"),
        ([_result("eu", FILTERED), _result("us", OPEN)], "ready from us; NOT ready from eu: tcp/2020 filtered"),
        (
            [_result("eu", OPEN), _result("us", FILTERED), _result("asia", FILTERED)],
            "ready from eu; NOT ready from us, asia: tcp/2020 filtered",
        ),
        (
            [_result("eu", OPEN, GUI_FAIL), _result("us", FILTERED, GUI_FAIL)],
            "NOT ready from eu: gui-login/443 fail; NOT ready from us: tcp/2020 filtered, gui-login/443 fail",
        ),
        (
            [_result("eu", OPEN), _result("us", *[_check(f"tcp/{port}", "error") for port in (1, 2, 3, 4, 5)])],
            "ready from eu; NOT ready from us: tcp/1 error, tcp/2 error, tcp/3 error and 2 more",
        ),
    ],
)
def test_verdict_names_the_vantages_that_pass_and_why_the_others_do_not(
    results: list[dict[str, Any]], expected: str
) -> None:
    assert vantages.verdict(results) == expected


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([_result("eu", OPEN, ROOT_OK), _result("us", OPEN, ROOT_OK)], []),
        ([_result("eu", OPEN, ROOT_OK), _result("us", FILTERED, ROOT_SKIPPED)], ["tcp/2020", "ssh-root/2020"]),
        # Same status, different evidence: not a disagreement.
        ([_result("eu", OPEN), _result("us", _check("tcp/2020", "pass", "open", "connect"))], []),
        # A check one vantage did not run differs.
        ([_result("eu", OPEN, GUI_FAIL), _result("us", OPEN)], ["gui-login/443"]),
        ([_result("eu", OPEN), _result("us", OPEN, GUI_FAIL)], ["gui-login/443"]),
    ],
)
def test_differing_checks_are_those_whose_status_is_not_the_same_everywhere(
    results: list[dict[str, Any]], expected: list[str]
) -> None:
    assert vantages.differing_checks({"vantages": results}) == expected


def test_matrix_gives_each_vantages_check_or_none_where_it_did_not_run() -> None:
    host = {"vantages": [_result("eu", OPEN, GUI_FAIL), _result("us", FILTERED)]}

    assert vantages.matrix(host) == [("tcp/2020", [OPEN, FILTERED]), ("gui-login/443", [GUI_FAIL, None])]


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (OPEN, "open/syn-ack"),
        (FILTERED, "filtered/no-response"),
        (_check("tcp/1", "fail", "closed"), "closed"),
        (ROOT_OK, ""),
        ({"id": "x", "status": "pass", "evidence": {"state": 3}}, ""),
    ],
)
def test_observed_is_the_state_and_reason_the_evidence_gives(check: dict[str, Any], expected: str) -> None:
    assert vantages.observed(check) == expected


def _document(prober: dict[str, Any], *hosts: tuple[str, bool], started: str = "2026-11-25T10:00:00Z",
              finished: str = "2026-11-25T10:00:05Z", warnings: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    host_list = [
        {"name": name, "product": "pbxware", "address": name, "ip": "203.0.113.7", "ready": ready,
         "checks": [OPEN if ready else FILTERED]}
        for name, ready in hosts
    ]  # fmt: skip
    ready_count = sum(ready for _, ready in hosts)
    return {
        "schema_version": "1",
        "tool": {"name": "preflight", "version": "0.1.0"},
        "started_at": started,
        "finished_at": finished,
        "prober": prober,
        "summary": {"hosts": len(hosts), "ready": ready_count, "not_ready": len(hosts) - ready_count},
        "hosts": host_list,
        "warnings": list(warnings),
    }


def test_merge_batches_joins_disjoint_hosts_spans_the_times_and_recounts() -> None:
    prober_a = {"hostname": "worker-1", "addresses": ["192.0.2.1"], "vantage": "eu", "egress_address": "198.51.100.1"}
    prober_b = {"hostname": "worker-2", "addresses": ["192.0.2.2", "192.0.2.1"], "vantage": "eu"}
    first = _document(prober_a, ("a", True), ("b", False), finished="2026-11-25T10:00:09Z", warnings=("w1",))
    second = _document(prober_b, ("c", True), started="2026-11-25T09:59:00Z", warnings=("w1", "w2"))

    merged = vantages.merge_batches([first, second])

    assert [host["name"] for host in merged["hosts"]] == ["a", "b", "c"]
    assert merged["summary"] == {"hosts": 3, "ready": 2, "not_ready": 1}
    assert (merged["started_at"], merged["finished_at"]) == ("2026-11-25T09:59:00Z", "2026-11-25T10:00:09Z")
    assert merged["prober"] == {
        "hostname": "worker-1, worker-2",
        "addresses": ["192.0.2.1", "192.0.2.2"],
        "vantage": "eu",
        "egress_address": "198.51.100.1",
    }
    assert merged["warnings"] == ["w1", "w2"]


def test_merge_batches_refuses_nothing_to_merge() -> None:
    with pytest.raises(ValueError, match="no batch to merge"):
        vantages.merge_batches([])


def test_combine_of_two_vantages_is_version_2_and_a_host_is_ready_only_from_every_vantage() -> None:
    prober = {"hostname": "w", "addresses": ["192.0.2.1"]}
    eu = _document(prober, ("a", True), ("b", True))
    us = _document({**prober, "egress_address": "198.51.100.2"}, ("a", True), ("b", False))

    combined = vantages.combine([("eu", eu), ("us", us)], inventory_sha256="0" * 64)

    assert combined["schema_version"] == "2" and "prober" not in combined
    assert [v["name"] for v in combined["vantages"]] == ["eu", "us"]
    assert combined["vantages"][1]["prober"] == {**prober, "egress_address": "198.51.100.2", "vantage": "us"}
    assert [v["summary"]["ready"] for v in combined["vantages"]] == [2, 1]
    assert combined["summary"] == {"hosts": 2, "ready": 1, "not_ready": 1}
    assert [(host["name"], host["ready"], host["verdict"]) for host in combined["hosts"]] == [
        ("a", True, "ready from eu, us"),
        ("b", False, "ready from eu; NOT ready from us: tcp/2020 filtered"),
    ]
    assert [r["name"] for r in combined["hosts"][1]["vantages"]] == ["eu", "us"]
    assert combined["inventory_sha256"] == "0" * 64


def test_combine_of_one_vantage_stays_version_1_and_names_the_vantage() -> None:
    only = _document({"hostname": "w", "addresses": []}, ("a", True))

    single = vantages.combine([("eu", only)])

    assert single["schema_version"] == "1" and single["prober"]["vantage"] == "eu"
    assert single["hosts"] == only["hosts"]


@pytest.mark.parametrize(
    ("per_vantage", "message"),
    [
        ([], "no vantage to combine"),
        (
            [
                ("eu", _document({"hostname": "w", "addresses": []}, ("a", True))),
                ("us", _document({"hostname": "w", "addresses": []}, ("z", True))),
            ],
            "vantage us reports host z where a was expected",
        ),
        (
            [
                ("eu", _document({"hostname": "w", "addresses": []}, ("a", True))),
                ("us", _document({"hostname": "w", "addresses": []}, ("a", True), ("b", True))),
            ],
            "vantage us reports 2 host(s) where 1 were expected",
        ),
        (
            [
                ("eu", _document({"hostname": "w", "addresses": []}, ("a", True))),
                ("eu", _document({"hostname": "w", "addresses": []}, ("a", True))),
            ],
            "a vantage is named twice: eu, eu",
        ),
    ],
)
def test_combine_refuses_reports_that_do_not_match(per_vantage: list[Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        vantages.combine(per_vantage)
    assert str(raised.value) == message
