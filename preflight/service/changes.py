"""Which checks just changed, for an answer that waits for a change (a long poll) rather than being asked again.

The store calls `notify` from whichever thread changed a check (a job runner's, the queue's collector, a request's);
a waiting request is an asyncio future on the event loop, so a thousand waiting clients hold no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class Watch:
    """One request's interest in one check: `changed` wakes it when the check changes after the watch began."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()

    async def changed(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True when the check changed (since the watch began or the last call), or
        when the service is stopping (no answer waits then)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._future), max(0.0, timeout))
        except TimeoutError:
            return False
        self._future = self._loop.create_future()
        return True

    def _wake(self) -> None:  # on the event loop
        if not self._future.done():
            self._future.set_result(None)


class Changes:
    def __init__(self) -> None:
        # Reentrant: `close` runs in a signal handler, which may interrupt this thread while it holds the lock.
        self._lock = threading.RLock()
        self._watches: dict[str, set[Watch]] = {}
        self._closed = False

    @contextlib.contextmanager
    def watch(self, check_id: str) -> Iterator[Watch]:
        """Watch a check from now on (before reading it, so that no change between the read and the wait is
        missed); on the running event loop."""
        watch = Watch(asyncio.get_running_loop())
        with self._lock:
            self._watches.setdefault(check_id, set()).add(watch)
            if self._closed:
                watch._wake()
        try:
            yield watch
        finally:
            with self._lock:
                watches = self._watches.get(check_id)
                if watches is not None:
                    watches.discard(watch)
                    if not watches:
                        del self._watches[check_id]

    def notify(self, check_id: str) -> None:
        """The check changed (from any thread)."""
        with self._lock:
            watches = list(self._watches.get(check_id, ()))
        self._wake(watches)

    def close(self) -> None:
        """The service is stopping: every waiting answer is given now, and none waits from now on (from any thread)."""
        with self._lock:
            self._closed = True
            watches = [watch for each in self._watches.values() for watch in each]
        self._wake(watches)

    @staticmethod
    def _wake(watches: list[Watch]) -> None:
        for watch in watches:
            with contextlib.suppress(RuntimeError):  # its loop has closed: the service is stopping
                watch._loop.call_soon_threadsafe(watch._wake)
