"""Keeps secrets out of text preflight did not write itself: library messages, exceptions, log lines."""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "********"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by a mask; longer secrets first, so none is left half-masked."""
    for secret in sorted((secret for secret in secrets if secret), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


# Log lines mask only secrets at least this long. preflight never formats a secret into a message, so the mask is a
# second line of defence; a shorter secret ("2020", "a") equals ordinary text, and masking it would mangle every port
# number or word that matches while showing the reader which text the password is. The inventory warns about it.
MIN_MASKED_LENGTH = 8


class RedactingFormatter(logging.Formatter):
    """Masks secrets of MIN_MASKED_LENGTH characters or more in the finished line: message, arguments, traceback."""

    def __init__(self, secrets: Iterable[str], fmt: str) -> None:
        super().__init__(fmt)
        self._secrets = tuple(secret for secret in secrets if len(secret) >= MIN_MASKED_LENGTH)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def log_to_stderr(verbosity: int, secrets: Iterable[str]) -> None:
    """-v: preflight's own progress; -vv: also paramiko's and urllib3's debug logs. Secrets are masked."""
    library_level = logging.DEBUG if verbosity >= 2 else logging.CRITICAL + 1
    logging.getLogger("paramiko").setLevel(library_level)
    logging.getLogger("urllib3").setLevel(library_level if verbosity >= 2 else logging.WARNING)
    if verbosity <= 0:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(secrets, "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("preflight").setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
