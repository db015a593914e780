"""A local run's reports, written as its hosts complete, so no report of the run is ever whole in memory.

The JSON report goes to a temporary file beside its path (or to stdout) host by host, hashed as it is written for
--sign, and is renamed into place only once the run has ended well. The HTML and JUnit reports open with the run's
totals, so until the run ends their hosts wait in a spool on disk, one compact JSON line each; each report is then
rendered from the spool one host at a time, into a temporary file of its own that is renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TextIO

from preflight.model import HostReport, RunSummary
from preflight.output_files import AtomicFile
from preflight.render import html, junit
from preflight.render import json as json_report


class RunReports:
    """Where a run's reports go while it runs: the JSON report (a file, stdout, or neither), and a spool of its hosts
    when an HTML or JUnit report is wanted. Use it in a `with` block: leaving it by an error, or by Ctrl-C, removes
    every temporary file and leaves each report path as it was."""

    def __init__(self, json_path: Path | None, json_stdout: TextIO | None, spool_folder: Path | None) -> None:
        self._json = AtomicFile(json_path) if json_path is not None else None
        self._stdout = json_stdout
        # signing.new_digest()'s hash (SHA-512, as ssh-keygen -Y sign), made here: importing signing loads
        # cryptography, which only --sign needs (tests/test_signing.py verifies a --sign run with ssh-keygen).
        self._digest = hashlib.sha512()
        # Anonymous (unlinked at once) and beside the reports: nothing is left behind, and no tmpfs fills with it.
        self._spool: IO[str] | None = (
            # Closed by __exit__.
            tempfile.TemporaryFile("w+", encoding="utf-8", dir=spool_folder)  # noqa: SIM115
            if spool_folder is not None
            else None
        )
        self._summary: RunSummary | None = None

    def __enter__(self) -> RunReports:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self._json is not None and kind is not None:
            self._json.discard()
        if self._spool is not None:
            self._spool.close()

    def write(self, hosts: Iterable[HostReport], summary: Callable[[], RunSummary]) -> RunSummary:
        """Write each host as it comes, then the run around them (`summary`, asked for after the last host)."""

        def rest() -> dict[str, Any]:
            self._summary = summary()
            return json_report.run_fields(self._summary)

        documents = (self._spooled(json_report.host_document(host)) for host in hosts)
        if self._json is None and self._stdout is None:
            for _ in documents:
                pass
            rest()
        else:
            json_report.write_document(self._write_json, json_report.SCHEMA_VERSION, documents, rest)
        if self._summary is None:
            raise RuntimeError("the run's summary was never asked for")
        return self._summary

    def _spooled(self, document: dict[str, Any]) -> dict[str, Any]:
        if self._spool is not None:
            self._spool.write(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n")
        return document

    def _write_json(self, text: str) -> None:
        data = text.encode("utf-8")
        self._digest.update(data)
        if self._json is not None:
            self._json.write(data)
        if self._stdout is not None:
            self._stdout.write(text)

    def commit_json(self) -> bytes:
        """Put the JSON report in place; the digest of its bytes, for `signing.sign_digest`."""
        if self._json is not None:
            self._json.commit()
        return bytes(self._digest.digest())

    def write_html(self, path: Path) -> None:
        """The HTML report of the run, rendered from the spool."""
        self._render(path, html.generate)

    def write_junit(self, path: Path) -> None:
        """The JUnit XML of the run, rendered from the spool."""
        self._render(path, junit.generate)

    def _render(
        self,
        path: Path,
        generate: Callable[[dict[str, Any], Callable[[], Iterable[dict[str, Any]]]], Iterable[str]],
    ) -> None:
        if self._summary is None:
            raise RuntimeError("the run is not written yet")
        head = {"schema_version": json_report.SCHEMA_VERSION, **json_report.run_fields(self._summary)}
        with AtomicFile(path) as out:
            for piece in generate(head, self._spooled_hosts):
                out.write(piece)

    def _spooled_hosts(self) -> Iterator[dict[str, Any]]:
        # Read from the start on each call; the renderers read the hosts one pass after another, never two at once.
        spool = self._spool
        if spool is None:
            raise RuntimeError("no spool: RunReports was made without a spool folder")
        spool.flush()
        spool.seek(0)
        for line in spool:
            yield json.loads(line)
