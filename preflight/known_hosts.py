"""preflight's own known_hosts file, in OpenSSH's format: first contact records a host key, a changed key is refused.

Entries are named as OpenSSH names them: `[address]:port`, or the bare address on port 22. Plain and hashed
(`|1|salt|hash`) names, comma-separated patterns with `*`, `?` and `!`, and `@revoked` lines are understood, so a
file shared with OpenSSH keeps working; `ssh-keygen -F '[address]:2020' -f FILE` finds what preflight writes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import ipaddress
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
_HASHED_PREFIX = "|1|"


class HostKeyState(StrEnum):
    KNOWN = "known"  # the file holds this key for this host
    RECORDED = "recorded"  # the host was unknown and its key is now in the file
    UNKNOWN = "unknown"  # the host was unknown and nothing was recorded (strict mode, or the file is not writable)
    CHANGED = "changed"  # the file holds other keys for this host, not this one
    REVOKED = "revoked"  # the file marks this key @revoked


@dataclass(frozen=True, slots=True)
class HostKeyVerdict:
    state: HostKeyState
    # Fingerprints of the keys the file holds for the host (evidence for a changed key).
    known_fingerprints: tuple[str, ...] = ()
    # Why an unknown key could not be recorded, when recording was asked for.
    not_recorded: str = ""


@dataclass(frozen=True, slots=True)
class _Entry:
    marker: str
    names: str
    key_type: str
    key_blob: bytes


def default_path(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user file: $XDG_STATE_HOME/preflight/known_hosts, else ~/.local/state/preflight/known_hosts."""
    environ = os.environ if environ is None else environ
    state_home = environ.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(state_home) if state_home and Path(state_home).is_absolute() else Path.home() / ".local" / "state"
    return base / "preflight" / "known_hosts"


def entry_name(address: str, port: int) -> str:
    """The name OpenSSH gives a host in known_hosts: `[address]:port`, or the bare address on port 22."""
    try:
        address = ipaddress.ip_address(address).compressed
    except ValueError:
        address = address.lower().rstrip(".")
    return address if port == 22 else f"[{address}]:{port}"


def fingerprint_of(key_blob: bytes) -> str:
    """A public key's fingerprint exactly as `ssh-keygen -lf` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


def entry_line(name: str, key_type: str, key_blob: bytes) -> str:
    """One known_hosts line, as ssh-keyscan prints it."""
    return f"{name} {key_type} {base64.b64encode(key_blob).decode()}"


def make_usable(path: Path) -> None:
    """Create the file (0600, in a 0700 directory) if needed; raise OSError if it cannot be read and written."""
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, FILE_MODE))
    except FileNotFoundError:
        path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        os.close(os.open(path, flags, FILE_MODE))


@cache
def known_hosts_file(path: Path) -> KnownHostsFile:
    """The one KnownHostsFile of `path` in this process, so that every thread shares its lock."""
    return KnownHostsFile(path)


class KnownHostsFile:
    """An OpenSSH known_hosts file that many threads, and other preflight processes, verify and record into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cached_stat: tuple[int, int, int] | None = None
        self._cached_entries: tuple[_Entry, ...] = ()
        self._index = _Index(())

    def known_key_types(self, name: str) -> frozenset[str]:
        """The key types the file holds for `name`, so a handshake can ask for one of those first."""
        with self._lock:
            entries = self._entries_for(name)
        return frozenset(entry.key_type for entry in entries if not entry.marker)

    def verify(self, name: str, key_type: str, key_blob: bytes, *, record: bool) -> HostKeyVerdict:
        """Judge the key `name` presented; record it when the host is unknown and `record` is set.

        Reading, judging and writing happen under one lock, so two checks of the same new host record it once.
        """
        if record:
            with contextlib.suppress(OSError):
                self.path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        with self._lock, self._process_lock():
            entries = self._read()
            mine = self._entries_for(name)
            if any(entry.marker == "@revoked" and entry.key_blob == key_blob for entry in mine):
                return HostKeyVerdict(HostKeyState.REVOKED)
            keys = [entry for entry in mine if not entry.marker]
            if any(entry.key_type == key_type and entry.key_blob == key_blob for entry in keys):
                return HostKeyVerdict(HostKeyState.KNOWN)
            if keys:
                # Of another type too: the handshake asks for a known type first, so a server that no longer
                # offers it has changed its keys.
                return HostKeyVerdict(HostKeyState.CHANGED, tuple(fingerprint_of(entry.key_blob) for entry in keys))
            if not record:
                return HostKeyVerdict(HostKeyState.UNKNOWN)
            try:
                self._append(entry_line(name, key_type, key_blob))
                recorded = _Entry("", name, key_type, key_blob)
                self._cached_entries = (*entries, recorded)
                self._index = self._index.extended(recorded, self._cached_entries)
            except OSError as exc:
                return HostKeyVerdict(HostKeyState.UNKNOWN, not_recorded=exc.strerror or str(exc))
            return HostKeyVerdict(HostKeyState.RECORDED)

    def _entries_for(self, name: str) -> list[_Entry]:
        entries = self._read()
        if self._index.entries is not entries:
            self._index = _Index(entries)
        return self._index.matching(name)

    def _read(self) -> tuple[_Entry, ...]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return ()
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature != self._cached_stat:
            self._cached_entries = tuple(_parse(self.path.read_text(encoding="utf-8", errors="replace")))
            self._cached_stat = signature
        return self._cached_entries

    def _append(self, line: str) -> None:
        """Rewrite the file with `line` added, through a temporary file renamed over it, so no reader sees half."""
        target = self.path.resolve()
        target.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        try:
            current = target.read_bytes()
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            current, mode = b"", FILE_MODE
        if current and not current.endswith(b"\n"):
            current += b"\n"
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(current + line.encode() + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        # The caller adds the new entry to the cache; the file's new identity makes the cache current.
        stat = target.stat()
        self._cached_stat = (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        """Hold an flock on the file's directory, so preflight runs in other processes take turns too."""
        directory = self.path.resolve().parent
        try:
            descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            # No directory yet, or not ours to open: writing will report the real problem.
            yield
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


class _Index:
    """Entries by plain host name, so a run over thousands of hosts does not scan the whole file for each one;
    hashed names and patterns still take a scan, as they cannot be looked up."""

    def __init__(self, entries: tuple[_Entry, ...]) -> None:
        self.entries = entries
        self._by_name: dict[str, list[_Entry]] = {}
        self._scanned: list[_Entry] = []
        for entry in entries:
            self._add(entry)

    def extended(self, entry: _Entry, entries: tuple[_Entry, ...]) -> _Index:
        """This index with `entry` (the last of `entries`) added, without indexing the rest again."""
        self._add(entry)
        self.entries = entries
        return self

    def _add(self, entry: _Entry) -> None:
        if entry.names.startswith(_HASHED_PREFIX) or any(char in entry.names for char in "*?!"):
            self._scanned.append(entry)
            return
        for pattern in dict.fromkeys(pattern.lower() for pattern in entry.names.split(",")):
            self._by_name.setdefault(pattern, []).append(entry)

    def matching(self, name: str) -> list[_Entry]:
        found = self._by_name.get(name, []) + [entry for entry in self._scanned if _names_match(entry.names, name)]
        # Keep the file's order, which decides nothing today but is what a reader of the file expects.
        return sorted(found, key=self.entries.index) if len(found) > 1 else found


def _parse(text: str) -> Iterator[_Entry]:
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        yield _Entry(marker, fields[0], fields[1], blob)


def _names_match(names: str, name: str) -> bool:
    if names.startswith(_HASHED_PREFIX):
        return _hashed_name_matches(names, name)
    matched = False
    for pattern in names.split(","):
        negated = pattern.startswith("!")
        if _pattern_matches(pattern[1:] if negated else pattern, name):
            if negated:
                return False
            matched = True
    return matched


def _hashed_name_matches(hashed: str, name: str) -> bool:
    try:
        salt, digest = (base64.b64decode(part) for part in hashed[len(_HASHED_PREFIX) :].split("|", 1))
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    # OpenSSH patterns know only * and ?; brackets in `[address]:port` are literal.
    return re.compile("".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern))


def _pattern_matches(pattern: str, name: str) -> bool:
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == name
    return _pattern(pattern.lower()).fullmatch(name) is not None
