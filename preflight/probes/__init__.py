"""The probes: one module per kind of check, found by discovery.

A module `foo_bar.py` is the check kind `foo-bar`. It defines
`plan(host, profile) -> list[Target]` and `run(target, deadline) -> Finding`. A kind that works better in
bulk (one port scan for the whole run) also defines `run_batch(targets, timeout) -> list[Finding]`;
the runner then gives it every target of that kind at once. Such a kind may not need another check.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding
from preflight.profiles import Profile
from preflight.target import Target

BulkRun = Callable[[Sequence[Target], float], list[Finding]]


@dataclass(frozen=True, slots=True)
class Probe:
    kind: str
    plan: Callable[[Host, Profile], list[Target]]
    run: Callable[[Target, Deadline], Finding]
    run_batch: BulkRun | None = None


@cache
def registry() -> Mapping[str, Probe]:
    """Every probe module in this package, keyed by its check kind."""
    probes: dict[str, Probe] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind = info.name.replace("_", "-")
        probes[kind] = Probe(kind=kind, plan=module.plan, run=module.run, run_batch=getattr(module, "run_batch", None))
    return probes
