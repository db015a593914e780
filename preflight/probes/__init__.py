"""The probes: one module per kind of check, found by discovery.

A module `foo_bar.py` is the check kind `foo-bar`. It defines
`plan(host, profile) -> list[Target]` and `run(target, deadline) -> Finding`. A kind that works better in
bulk (one port scan for a batch of up to 4,096 hosts) also defines `run_batch(targets, timeout) -> list[Finding]`;
the runner then gives it every target of that kind in a batch at once. Such a kind may not need another check.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

# Types only: listing the kinds (as --help and --only do) must not load the inventory's models or any probe.
if TYPE_CHECKING:
    from preflight.deadline import Deadline
    from preflight.inventory import Host
    from preflight.model import Finding
    from preflight.profiles import Profile
    from preflight.target import Target

BulkRun = Callable[[Sequence["Target"], float], list["Finding"]]


@dataclass(frozen=True, slots=True)
class Probe:
    kind: str
    plan: Callable[[Host, Profile], list[Target]]
    run: Callable[[Target, Deadline], Finding]
    run_batch: BulkRun | None = None


class _Registry(Mapping[str, Probe]):
    """Every probe module in this package by its check kind; a module is imported when its kind is first used,
    so a run that needs only some kinds does not pay for the libraries of the others."""

    def __init__(self) -> None:
        self._modules = {info.name.replace("_", "-"): info.name for info in pkgutil.iter_modules(__path__)}
        self._loaded: dict[str, Probe] = {}
        self._lock = threading.Lock()

    def __getitem__(self, kind: str) -> Probe:
        with self._lock:
            if kind not in self._loaded:
                module = importlib.import_module(f"{__name__}.{self._modules[kind]}")
                run_batch = getattr(module, "run_batch", None)
                self._loaded[kind] = Probe(kind=kind, plan=module.plan, run=module.run, run_batch=run_batch)
            return self._loaded[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


@cache
def registry() -> Mapping[str, Probe]:
    return _Registry()


def load_every_probe() -> Mapping[str, Probe]:
    """The registry with every probe module imported (scapy's among them, about 0.2 s): for a process that probes
    for a living (the service, a worker), so that its first check does not pay for them, nor wait under the
    registry's lock while another imports them."""
    probes = registry()
    for kind in probes:
        probes[kind]
    return probes
