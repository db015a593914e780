"""Credentials at rest: an inventory with passwords is sealed (Fernet: AES-CBC + HMAC) before it touches the
database, and opened only inside the job that uses it. The key lives in a 0600 file the service holds."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SealingError(Exception):
    """A sealed inventory cannot be opened: the key changed, or the data is not ours."""


def load_or_create_master_key(path: Path) -> bytes:
    """The service's 32-byte secret, created 0600 on first start (never readable by others, even briefly)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(text + "\n")
        try:
            os.link(temporary, path)  # never replaces a key another process wrote first
        except FileExistsError:
            text = path.read_text(encoding="ascii").strip()
        finally:
            temporary.unlink()
    try:
        key = base64.urlsafe_b64decode(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SealingError(f"{path}: not a preflight service key (32 bytes, base64)")
    return key


def derive(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so the credentials key and the session key are never the same."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"preflight {purpose}".encode()).derive(master)


class Sealer:
    """Seals and opens credentials with the service's key."""

    def __init__(self, master: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive(master, "credentials")))

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise SealingError("the credentials cannot be opened with this service's key") from None
