"""Grouping a host's checks by cause: a skipped check goes under the failure it waited for, however far back."""

from __future__ import annotations

from preflight.render.causes import Row, group


def test_a_chain_of_skips_lands_under_its_root_failure() -> None:
    rows = [
        Row("tcp/443", "fail"),
        Row("service/443", "skipped", "tcp/443"),
        Row("gui-login/443", "skipped", "service/443"),
        Row("ssh-root/2020", "fail"),
    ]

    grouped = group(rows)

    assert [(problem.index, problem.blocked) for problem in grouped.problems] == [(0, [1, 2]), (3, [])]


def test_a_skip_without_a_failed_cause_stands_on_its_own() -> None:
    rows = [
        Row("public-ip", "warn"),
        Row("tcp/80", "skipped"),  # no address: nothing to point at
        Row("a", "skipped", "b"),
        Row("b", "skipped", "a"),  # a loop leads nowhere
        Row("c", "skipped", "public-ip"),
    ]

    grouped = group(rows)

    assert [problem.index for problem in grouped.problems] == [1, 2, 3, 4]
    assert grouped.warnings == [0]
