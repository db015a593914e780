"""The service's log: secrets never go into a message, and the passwords of running checks are masked anyway."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from preflight.redaction import redact

_lock = threading.Lock()
_active: Counter[str] = Counter()
# Shorter values (a port number, a word) would mangle ordinary log text; messages never hold a secret anyway.
MIN_MASKED = 4


@contextmanager
def masking(secrets: Iterable[str]) -> Iterator[None]:
    """While a job runs, its passwords are masked in every log line the process writes."""
    held = [secret for secret in secrets if len(secret) >= MIN_MASKED]
    with _lock:
        _active.update(held)
    try:
        yield
    finally:
        with _lock:
            _active.subtract(held)
            for secret in held:
                if _active[secret] <= 0:
                    del _active[secret]


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        with _lock:
            secrets = tuple(_active)
        return redact(super().format(record), secrets)


def configure(level: int) -> None:
    """Log to stderr at `level` with the running checks' passwords masked; the libraries' debug logs included."""
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces each of its plugins at start; a migration it applies is still logged.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
