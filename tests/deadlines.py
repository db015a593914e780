"""Deadline assertions that record their slack: `within_deadline(elapsed, allowed)` asserts, and also notes both
numbers on the running test (JUnit properties), so tests/test_deadline_slack.py can report the smallest margin seen
when both cores are busy."""

from __future__ import annotations

import json

import pytest

_running: list[pytest.Item] = []
PROPERTY = "deadline_slack"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    """Remember which test runs, for `within_deadline` to record on."""
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


def within_deadline(elapsed: float, allowed: float, what: str = "") -> None:
    """Assert that `elapsed` seconds are under `allowed`, and record both on the running test."""
    if _running:
        record = {"elapsed": round(elapsed, 4), "allowed": round(allowed, 4), "what": what}
        _running[-1].user_properties.append((PROPERTY, json.dumps(record)))
    assert elapsed < allowed, f"{what or 'it'} took {elapsed:.3f} s; the deadline allows {allowed:.3f} s"
