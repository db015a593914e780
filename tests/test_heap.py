"""preflight.service.heap: what the service and its workers leave out of the garbage collector's passes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from preflight.service.heap import freeze_startup_objects


@pytest.fixture
def thawed_after() -> Iterator[None]:
    yield
    gc.unfreeze()


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _pair() -> list[_Node]:
    """Two objects that point at each other: once nothing else holds them, only a collection frees them."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return [first, second]


def test_what_is_made_after_the_freeze_is_still_collected(thawed_after: None) -> None:
    frozen = freeze_startup_objects()
    assert frozen == gc.get_freeze_count() > 0
    later = weakref.ref(_pair()[0])
    gc.collect()
    assert later() is None


def test_what_was_alive_at_the_freeze_is_left_out_of_collections(thawed_after: None) -> None:
    """The control: the freeze is real (a function that froze nothing would let this pair be collected)."""
    held = _pair()
    alive = weakref.ref(held[0])
    freeze_startup_objects()
    del held
    gc.collect()
    assert alive() is not None
    gc.unfreeze()
    gc.collect()
    assert alive() is None
