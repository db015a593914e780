"""The probes: one module per kind of check, found by discovery.

A module `foo_bar.py` is the check kind `foo-bar`. It defines
`plan(host, profile) -> list[Target]` and `run(target, deadline) -> Finding`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding
from preflight.profiles import Profile
from preflight.target import Target


@dataclass(frozen=True, slots=True)
class Probe:
    kind: str
    plan: Callable[[Host, Profile], list[Target]]
    run: Callable[[Target, Deadline], Finding]


@cache
def registry() -> Mapping[str, Probe]:
    """Every probe module in this package, keyed by its check kind."""
    probes: dict[str, Probe] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind = info.name.replace("_", "-")
        probes[kind] = Probe(kind=kind, plan=module.plan, run=module.run)
    return probes
