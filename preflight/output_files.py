"""Report files: refused when they would overwrite an input or each other, and written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


class OutputError(Exception):
    """An output path that cannot or must not be written; one line naming the option and the path."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


def refuse_collisions(inputs: Iterable[tuple[str, Path]], outputs: Iterable[tuple[str, Path]]) -> None:
    """Raise if an output is an input or another output, after following links, so no run destroys its own files."""
    seen: list[tuple[str, Path, Path]] = [(label, path, _identity(path)) for label, path in inputs]
    for option, path in outputs:
        identity = _identity(path)
        for label, other, other_identity in seen:
            if identity == other_identity or _same_existing_file(path, other):
                raise OutputError(
                    f"{option} {path}: is the same file as {label} {other}; write each output to its own path"
                )
        seen.append((option, path, identity))


def _identity(path: Path) -> Path:
    # resolve() follows every symbolic link, even to a file that does not exist yet.
    return path.expanduser().resolve()


def _same_existing_file(path: Path, other: Path) -> bool:
    # Hard links and bind mounts have different names for one file.
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def check_writable(option: str, path: Path) -> None:
    """Fail now, before anything is probed, if `path` could not be written at the end of the run."""
    if path.is_dir():
        raise OutputError(f"{option} {path}: cannot write: Is a directory", "Is a directory")
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"{option} {path}: cannot write: {reason}", reason) from None
    os.close(descriptor)
    os.unlink(temporary)


def write_atomically(path: Path, content: str | bytes) -> None:
    """Write `content` to a temporary file beside `path`, sync it, then rename it over `path`.

    A reader, or a run cut short, sees the old file or the new one, never a part of either.
    """
    with AtomicFile(path) as file:
        file.write(content)


class AtomicFile:
    """A file written piece by piece beside `path` and renamed over it only when the `with` block ends well.

    As `write_atomically`, for a report too large to hold whole: a failure or an interrupt part way (a full disk, a
    Ctrl-C) removes the temporary file and leaves whatever was at `path` as it was.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mode = _mode_for(path)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self._temporary = Path(temporary)
        self._file = os.fdopen(descriptor, "wb")
        self._done = False

    def write(self, content: str | bytes) -> None:
        """Append `content` (text as UTF-8, with no newline translation)."""
        self._file.write(content.encode("utf-8") if isinstance(content, str) else content)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()

    def commit(self) -> None:
        """Sync what was written and put it in place of `path`."""
        if self._done:
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self._temporary, self._mode)
            os.replace(self._temporary, self.path)
        except BaseException:
            self.discard()
            raise
        self._done = True
        _sync_directory(self.path.parent)

    def discard(self) -> None:
        """Remove the temporary file; `path` keeps what it had."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._temporary)


def _mode_for(path: Path) -> int:
    # mkstemp makes the file 0600; a report keeps the mode of the one it replaces, else the umask's default.
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_directory(folder: Path) -> None:
    # The rename is durable only once the directory is synced; some file systems cannot, which is no error.
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
