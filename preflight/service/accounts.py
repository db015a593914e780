"""Support engineers' accounts (argon2 password hashes) and API tokens (a recognisable prefix, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from preflight.service.store import Store

TOKEN_PREFIX = "pft_"  # noqa: S105 - the tokens' recognisable prefix, not a secret
_hasher = PasswordHasher()
# Verifying against this when the user does not exist takes as long as a real check, so timing reveals nothing.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(store: Store, name: str, password: str) -> bool:
    """Whether `password` is `name`'s; as slow for an unknown name as for a known one."""
    stored = store.user_hash(name)
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A fresh API token: the prefix says what it is (secret scanners know the shape), then 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(store: Store, name: str) -> str:
    token = new_token()
    store.add_token(name, token_digest(token), token[: len(TOKEN_PREFIX) + 4])
    return token


def token_owner(store: Store, token: str) -> str | None:
    """The name of the token's holder, or None. The lookup is by SHA-256, so timing says nothing of the token."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return store.token_name(token_digest(token))
