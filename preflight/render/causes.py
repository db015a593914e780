"""Which checks to fix first, for the renderers people read: each problem with the checks it kept from running.

A skipped check names, in `evidence.needs`, the check it waited for; following that chain leads to the failure
that is its root cause. People fix causes, so a skipped check is shown under its cause, not as a problem of its
own. The profile orders the checks as they depend on each other (address, ports, the services on them, the
logins that need those), so the report's own order is the order to fix them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

BLOCKING = frozenset({"fail", "error"})


@dataclass(frozen=True, slots=True)
class Row:
    """What grouping needs of a check: its id, its status, and the check it waited for."""

    id: str
    status: str
    needs: str | None = None


@dataclass(slots=True)
class Problem:
    """A check to fix (by its index in the host's checks) and the indexes of the checks it blocked."""

    index: int
    blocked: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Grouped:
    problems: list[Problem]
    warnings: list[int]
    passes: list[int]


def group(rows: Sequence[Row]) -> Grouped:
    """A host's checks as a reader needs them: problems in the order to fix them, then warnings, then passes."""
    position = {row.id: index for index, row in enumerate(rows)}
    problems: dict[int, Problem] = {}
    for index, row in enumerate(rows):
        if row.status in BLOCKING:
            problems[index] = Problem(index)
    for index, row in enumerate(rows):
        if row.status != "skipped":
            continue
        cause = root_cause(index, rows, position)
        if cause is not None and cause in problems:
            problems[cause].blocked.append(index)
        else:
            problems[index] = Problem(index)
    return Grouped(
        problems=[problems[index] for index in sorted(problems)],
        warnings=[index for index, row in enumerate(rows) if row.status == "warn"],
        passes=[index for index, row in enumerate(rows) if row.status == "pass"],
    )


def root_cause(index: int, rows: Sequence[Row], position: dict[str, int]) -> int | None:
    """The index of the first check, following `needs` from a skipped one, that was not itself skipped."""
    seen = {index}
    current = index
    while rows[current].status == "skipped":
        needs = rows[current].needs
        if needs is None or needs not in position or position[needs] in seen:
            return None
        current = position[needs]
        seen.add(current)
    return current
