"""SSH signatures of reports (OpenSSH's SSHSIG format), so `ssh-keygen -Y verify` checks them as preflight does.

The format is PROTOCOL.sshsig from OpenSSH: an armored blob holding the magic `SSHSIG`, version 1, the signer's
public key, the namespace, an empty reserved field, the hash algorithm and the signature. What the key signs is
not the data itself but `SSHSIG`, the namespace, the reserved field, the hash algorithm and the data's hash, so a
signature made for another purpose (another namespace) never passes as a report's signature.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import stat
import struct
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from preflight import known_hosts

NAMESPACE = "preflight-report"
KEY_TYPE = "ssh-ed25519"
FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
DIRECTORY_MODE = 0o700

_MAGIC = b"SSHSIG"
_VERSION = 1
_HASH_ALGORITHM = "sha512"
# ssh-keygen -Y sign uses sha512 by default; PROTOCOL.sshsig allows sha256 too, and ssh-keygen -Y verify accepts it.
_HASHES = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}
_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
_END = b"-----END SSH SIGNATURE-----"
_ARMOR_WIDTH = 70
_ED25519_SIGNATURE_LENGTH = 64
_KEY_LINE = re.compile(rf"(?:^|\s){KEY_TYPE}\s+([A-Za-z0-9+/]+=*)(?:\s|$)")


class SigningError(Exception):
    """A key file or key text that cannot be used: missing, unreadable, encrypted, not Ed25519."""


class SignatureError(Exception):
    """A signature that does not prove the data came unchanged from the trusted key."""


def default_signing_key_path(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user signing key: $XDG_STATE_HOME/preflight/signing_key, else ~/.local/state/preflight/signing_key."""
    return known_hosts.default_path(environ).with_name("signing_key")


def public_key_path(private_key_path: Path) -> Path:
    """Where the public half of a private key file lives, as ssh-keygen names it: `<path>.pub`."""
    return private_key_path.with_name(private_key_path.name + ".pub")


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in `path` (OpenSSH or PEM, unencrypted); a new one, with `<path>.pub`, if there is none."""
    try:
        return _load_private_key(path)
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    try:
        _make_private_directory(path.parent)
        if not _create_exclusively(path, key.private_bytes(*_OPENSSH_PRIVATE)):
            # Another process created the key first: use theirs, so that both sign with the key on disk.
            return _load_private_key(path)
        _replace_file(public_key_path(path), (public_key_line(key) + "\n").encode(), PUBLIC_FILE_MODE)
    except OSError as exc:
        raise SigningError(f"{path}: cannot create the signing key: {exc.strerror or exc}") from None
    return key


def public_key_line(key: Ed25519PrivateKey | Ed25519PublicKey, comment: str = "preflight") -> str:
    """The public key as one OpenSSH line, `ssh-ed25519 AAAA... comment`, for a .pub or allowed_signers file."""
    if any(character in comment for character in "\r\n"):
        raise ValueError("a public key comment must be one line")
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}" if comment else line


def load_public_key(text_or_path: str | Path) -> Ed25519PublicKey:
    """The Ed25519 key of a .pub file or allowed_signers line: a Path is read, a str is the key text itself."""
    if isinstance(text_or_path, Path):
        try:
            text = text_or_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            raise SigningError(f"{text_or_path}: cannot read the public key: {reason}") from None
        where = str(text_or_path)
    else:
        text, where = text_or_path, "public key"
    if "PRIVATE KEY-----" in text:
        raise SigningError(f"{where}: is a private key; give the public key (its .pub file)")
    keys = {match for line in text.splitlines() if not line.lstrip().startswith("#") for match in _key_blobs(line)}
    if not keys:
        raise SigningError(f"{where}: no {KEY_TYPE} public key (expected a line like '{KEY_TYPE} AAAA... comment')")
    if len(keys) > 1:
        raise SigningError(f"{where}: holds {len(keys)} different keys; give the one file or line to trust")
    return _public_key_from_blob(keys.pop(), where)


def fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The key's fingerprint as `ssh-keygen -lf` prints it: `SHA256:...`."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return known_hosts.fingerprint_of(_public_key_blob(public))


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """An armored SSH signature (namespace preflight-report, sha512) over exactly `data`."""
    return sign_digest(_HASHES[_HASH_ALGORITHM](data).digest(), key)


def new_digest() -> Any:
    """The hash a signature covers, to feed a report that is written piece by piece (then `sign_digest`)."""
    return _HASHES[_HASH_ALGORITHM]()


def sign_digest(digest: bytes, key: Ed25519PrivateKey) -> bytes:
    """As `sign`, for data already hashed with `new_digest`: a report too large to hold whole is signed as written."""
    signed = _signed_data(NAMESPACE.encode(), b"", _HASH_ALGORITHM, digest)
    signature_blob = _string(KEY_TYPE.encode()) + _string(key.sign(signed))
    blob = (
        _MAGIC
        + struct.pack(">I", _VERSION)
        + _string(_public_key_blob(key.public_key()))
        + _string(NAMESPACE.encode())
        + _string(b"")
        + _string(_HASH_ALGORITHM.encode())
        + _string(signature_blob)
    )
    encoded = base64.b64encode(blob)
    lines = [encoded[start : start + _ARMOR_WIDTH] for start in range(0, len(encoded), _ARMOR_WIDTH)]
    return b"\n".join([_BEGIN, *lines, _END]) + b"\n"


def verify(data: bytes, signature: bytes, public_key: Ed25519PublicKey) -> None:
    """Return if `signature` is the trusted key's preflight-report signature of exactly `data`; else SignatureError."""
    _verify(lambda algorithm: _HASHES[algorithm](data).digest(), signature, public_key)


def verify_digest(digest: Any, signature: bytes, public_key: Ed25519PublicKey) -> None:
    """As `verify`, for data hashed as it streamed by (`new_digest`): a report too large to hold whole."""

    def digest_of(algorithm: str) -> bytes:
        # The data went by once, hashed one way: a signature over another hash of it cannot be checked.
        if algorithm != digest.name:
            raise SignatureError(f"signed with {algorithm}, but the report was hashed with {digest.name}")
        return bytes(digest.digest())

    _verify(digest_of, signature, public_key)


def _verify(digest_of: Callable[[str], bytes], signature: bytes, public_key: Ed25519PublicKey) -> None:
    fields = _Reader(_dearmor(signature))
    if fields.take(len(_MAGIC), "magic") != _MAGIC:
        raise SignatureError("not an SSHSIG signature: wrong magic (expected 'SSHSIG')")
    version = fields.uint32("version")
    if version != _VERSION:
        raise SignatureError(f"unsupported SSHSIG version {version} (expected {_VERSION})")
    key_blob = fields.string("public key")
    namespace = fields.string("namespace")
    reserved = fields.string("reserved field")
    hash_algorithm = fields.string("hash algorithm")
    signature_blob = fields.string("signature")
    fields.end("signature")

    if namespace != NAMESPACE.encode():
        raise SignatureError(f"wrong namespace {_shown(namespace)} (expected {NAMESPACE!r})")
    if hash_algorithm.decode("ascii", "replace") not in _HASHES:
        raise SignatureError(f"unsupported hash algorithm {_shown(hash_algorithm)} (expected sha512 or sha256)")
    trusted_blob = _public_key_blob(public_key)
    if key_blob != trusted_blob:
        signer = known_hosts.fingerprint_of(key_blob)
        raise SignatureError(f"signed by key {signer}, not by the trusted key {fingerprint(public_key)}")

    raw = _Reader(signature_blob)
    signature_type = raw.string("signature type")
    raw_signature = raw.string("signature bytes")
    raw.end("signature bytes")
    if signature_type != KEY_TYPE.encode():
        raise SignatureError(f"unsupported signature type {_shown(signature_type)} (expected {KEY_TYPE!r})")
    if len(raw_signature) != _ED25519_SIGNATURE_LENGTH:
        raise SignatureError(f"malformed signature: {len(raw_signature)} signature bytes, not 64")
    # The reserved field is signed as it is carried, so a changed one fails below rather than being ignored.
    signed = _signed_data(namespace, reserved, hash_algorithm.decode(), digest_of(hash_algorithm.decode()))
    try:
        public_key.verify(raw_signature, signed)
    except InvalidSignature:
        raise SignatureError("signature does not match the data: the report or the signature was changed") from None


_OPENSSH_PRIVATE = (
    serialization.Encoding.PEM,
    serialization.PrivateFormat.OpenSSH,
    serialization.NoEncryption(),
)


class _Reader:
    """Reads SSH wire-format fields, naming the field that is cut short."""

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._offset = 0

    def take(self, length: int, field: str) -> bytes:
        if self._offset + length > len(self._blob):
            raise SignatureError(f"malformed signature: cut short in the {field}")
        chunk = self._blob[self._offset : self._offset + length]
        self._offset += length
        return chunk

    def uint32(self, field: str) -> int:
        value: int = struct.unpack(">I", self.take(4, field))[0]
        return value

    def string(self, field: str) -> bytes:
        return self.take(self.uint32(field), field)

    def end(self, field: str) -> None:
        if self._offset != len(self._blob):
            raise SignatureError(f"malformed signature: {len(self._blob) - self._offset} extra bytes after the {field}")


def _dearmor(signature: bytes) -> bytes:
    # Parsed as ssh-keygen parses it: the header first, then base64 up to the footer line, and nothing after counts.
    if not signature.startswith(_BEGIN):
        raise SignatureError(f"not an armored SSH signature: it does not start with {_BEGIN.decode()}")
    end = signature.find(b"\n" + _END, len(_BEGIN))
    if end < 0:
        raise SignatureError(f"not an armored SSH signature: no {_END.decode()} line")
    body = signature[len(_BEGIN) : end]
    if not body.startswith((b"\n", b"\r\n")):
        raise SignatureError("not an armored SSH signature: text after the BEGIN line")
    encoded = b"".join(body.split())
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise SignatureError("bad base64 in the signature") from None
    # Only the canonical encoding is accepted, as OpenSSH does, so one blob has exactly one armored form.
    if base64.b64encode(blob) != encoded:
        raise SignatureError("bad base64 in the signature: not in canonical form")
    return blob


def _signed_data(namespace: bytes, reserved: bytes, hash_algorithm: str, digest: bytes) -> bytes:
    return _MAGIC + _string(namespace) + _string(reserved) + _string(hash_algorithm.encode()) + _string(digest)


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _shown(value: bytes) -> str:
    return repr(value.decode("utf-8", "replace"))


def _public_key_blob(key: Ed25519PublicKey) -> bytes:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _string(KEY_TYPE.encode()) + _string(raw)


def _key_blobs(line: str) -> list[bytes]:
    blobs = []
    for match in _KEY_LINE.finditer(line):
        try:
            blobs.append(base64.b64decode(match.group(1), validate=True))
        except binascii.Error:
            continue
    return blobs


def _public_key_from_blob(blob: bytes, where: str) -> Ed25519PublicKey:
    reader = _Reader(blob)
    try:
        key_type = reader.string("key type")
        raw = reader.string("key")
        reader.end("key")
    except SignatureError:
        raise SigningError(f"{where}: malformed {KEY_TYPE} public key") from None
    if key_type != KEY_TYPE.encode() or len(raw) != 32:
        raise SigningError(f"{where}: malformed {KEY_TYPE} public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        with path.open("rb") as file:
            status = os.fstat(file.fileno())
            text = file.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the signing key: {exc.strerror or exc}") from None
    # As ssh does: a private key that others may read is refused rather than trusted.
    if status.st_uid == os.getuid() and stat.S_IMODE(status.st_mode) & 0o077:
        mode = stat.S_IMODE(status.st_mode)
        raise SigningError(f"{path}: the signing key is readable by others (mode {mode:04o}); chmod 600 it")
    key: object
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in text:
            key = serialization.load_ssh_private_key(text, password=None)
        else:
            key = serialization.load_pem_private_key(text, password=None)
    except TypeError:
        # cryptography raises TypeError for a key that needs a password.
        raise SigningError(f"{path}: the signing key is encrypted; give an unencrypted Ed25519 key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError(f"{path}: not an OpenSSH or PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 key ({type(key).__name__.removesuffix('PrivateKey')})")
    return key


def _make_private_directory(directory: Path) -> None:
    # Path.mkdir(parents=True) would give the missing parents the umask's mode; each one is made 0700 instead.
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIRECTORY_MODE)


def _create_exclusively(path: Path, content: bytes) -> bool:
    # Written whole to a 0600 temporary file, then linked into place: no reader ever sees a partial key, the file
    # is never readable by others, and an existing key is never replaced (link fails where rename would not).
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(temporary)
    return True


def _replace_file(path: Path, content: bytes, mode: int) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fchmod(file.fileno(), mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
