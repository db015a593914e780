"""`preflight check INVENTORY --remote URL`: the CLI as a client of a preflight service. The inventory is
validated here exactly as for a local run, sent with its secrets over the connection, and checked from the
service's network; the signed report comes back and is written as a local run writes its reports.

A report of thousands of hosts is tens of megabytes: it is downloaded to a file, hashed as it comes and checked
against the service's signature, then read back one host at a time (DownloadedReport), never whole in memory."""

from __future__ import annotations

import codecs
import contextlib
import importlib
import json
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

from pydantic import SecretStr

from preflight.inventory import Host, Inventory
from preflight.model import CheckResult, HostReport, RunReport, RunSummary, Status

POLL_SECONDS = 0.25  # a poll asks only for the counts: cheap for the service, and the report comes sooner
# A status answer waits this long for a change (a long poll): the client hears of the verdict as it is signed.
WAIT_SECONDS = 10
NO_RESULTS = 999_999_999
REQUEST_SECONDS = 30.0
DOWNLOAD_CHUNK = 1 << 16


class RemoteError(Exception):
    """The service could not be used, or refused the inventory: one line, exit 2."""


def inventory_document(inventory: Inventory) -> dict[str, Any]:
    """The hosts as the API takes them: the YAML inventory's shape, defaults merged in, secrets inline."""
    hosts = []
    for host in inventory.hosts:
        if host.ssh.key_file is not None or any(item.key_file for item in host.ssh.per_port.values()):
            raise RemoteError(
                f"host {host.name}: ssh.key_file cannot be used with --remote; a key file never leaves this machine"
            )
        hosts.append(_plain(host.model_dump(exclude_none=True, exclude_defaults=True), host))
    return {"hosts": hosts}


def _plain(value: Any, host: Host) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {str(key): _plain(child, host) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(child, host) for child in value]
    return value


def check_remote(
    url: str,
    token: str,
    ticket: str,
    inventory: Inventory,
    deadline_seconds: float,
    on_progress: Callable[[int, int], None] | None = None,
    only: Sequence[str] = (),
    vantages: Sequence[str] = (),
    *,
    into: IO[bytes],
) -> bytes:
    """Submit the inventory, wait for the verdict, and download the signed report `into` a file; its signature.

    The report is hashed as it comes and checked against the service's key before this returns: a download cut
    short, or bytes that are not the ones the service signed, are a RemoteError.
    """
    import requests

    base = url if url.endswith("/") else url + "/"
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RemoteError(f"--remote {url}: must be the service's address, such as https://preflight.example.com/")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise RemoteError(f"--remote {url}: the inventory holds passwords; use https:// (plain http only on loopback)")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    body: dict[str, Any] = {"ticket": ticket, "inventory": inventory_document(inventory)}
    if only:
        body["only"] = list(only)
    if vantages:
        body["vantages"] = list(vantages)
    data = json.dumps(body).encode()
    # Signing loads cryptography (60 ms of CPU), needed only once the check is done: loaded while the service takes
    # the submission in, once its body is encoded here (which it would slow down), rather than later, beside the
    # service's dispatch and the worker's start on the machine's other cores. Here, not at the top: every command
    # imports this module.
    loading = threading.Thread(target=_preload, args=("preflight.signing",), daemon=True)
    loading.start()
    try:
        answer = session.post(urljoin(base, "api/v1/checks"), data=data, timeout=REQUEST_SECONDS,
                              allow_redirects=False, headers={"Content-Type": "application/json"})
    except requests.RequestException as exc:
        raise RemoteError(f"--remote {url}: cannot reach the service ({type(exc).__name__})") from None
    if answer.status_code != 202:
        raise RemoteError(f"the service refused the check ({answer.status_code}): {_reason(answer)}")
    status_url = urljoin(base, answer.json()["status_url"].lstrip("/"))
    give_up = time.monotonic() + deadline_seconds
    while True:
        try:
            # Only the counts while waiting (the results come with the report), answered when they change.
            wait = max(1, min(WAIT_SECONDS, math.ceil(give_up - time.monotonic())))
            state = session.get(status_url, params={"since": NO_RESULTS, "wait": wait},
                                timeout=REQUEST_SECONDS + wait).json()
        except (requests.RequestException, ValueError) as exc:
            raise RemoteError(f"--remote {url}: lost the service while waiting ({type(exc).__name__})") from None
        if on_progress is not None:
            on_progress(int(state["progress"]["done"]), int(state["progress"]["total"]))
        if state["state"] == "failed":
            raise RemoteError(f"the service could not complete the check: {state.get('error')}")
        if state["state"] == "done":
            break
        if time.monotonic() > give_up:
            raise RemoteError(f"the service did not finish within {deadline_seconds:.0f}s; see {status_url}")
        if "wait" not in state:  # a service of an earlier release answers at once: ask again shortly
            time.sleep(POLL_SECONDS)
    links = state["links"]
    loading.join()
    from preflight import signing
    try:
        signature: bytes = _fetched(session, urljoin(base, links["signature"].lstrip("/"))).content
        key_line = _fetched(session, urljoin(base, "api/v1/signing-key")).text
        digest = signing.new_digest()
        with _fetched(session, urljoin(base, links["report_json"].lstrip("/")), stream=True) as download:
            for chunk in download.iter_content(DOWNLOAD_CHUNK):
                digest.update(chunk)
                into.write(chunk)
    except requests.RequestException as exc:
        lost = f"lost the service while downloading the report ({type(exc).__name__})"
        raise RemoteError(f"--remote {url}: {lost}") from None
    into.flush()
    try:
        signing.verify_digest(digest, signature, signing.load_public_key(key_line))
    except (signing.SigningError, signing.SignatureError) as exc:
        raise RemoteError(f"the report downloaded from the service does not verify: {exc}") from None
    return signature


def _preload(module: str) -> None:
    """Import `module` ahead of need; a failure shows where it is imported for use, not here in a thread."""
    with contextlib.suppress(Exception):
        importlib.import_module(module)


def _fetched(session: Any, url: str, stream: bool = False) -> Any:
    answer = session.get(url, timeout=REQUEST_SECONDS, stream=stream)
    if answer.status_code != 200:
        answer.close()
        raise RemoteError(f"the service did not give {urlsplit(url).path} ({answer.status_code}): {_reason(answer)}")
    return answer


def _reason(answer: Any) -> str:
    try:
        return str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        return answer.reason or "no reason given"


def from_document(document: Mapping[str, Any]) -> RunReport:
    """A RunReport again from its version 1 document, so the terminal views show a remote run as a local one."""
    if document.get("schema_version") != "1":
        raise ValueError(f"a version {document.get('schema_version')} report has no single RunReport")
    summary = summary_from_fields(document, len(document["hosts"]), sum(bool(h["ready"]) for h in document["hosts"]))
    return RunReport(
        tool_version=summary.tool_version,
        started_at=summary.started_at,
        finished_at=summary.finished_at,
        prober_hostname=summary.prober_hostname,
        prober_addresses=summary.prober_addresses,
        hosts=tuple(host_from_document(host) for host in document["hosts"]),
        warnings=summary.warnings,
        inventory_sha256=summary.inventory_sha256,
    )


def summary_from_fields(fields: Mapping[str, Any], hosts: int, ready: int) -> RunSummary:
    """The RunSummary of a version 1 document from every key but its hosts, and the counts of its hosts."""
    return RunSummary(
        tool_version=fields["tool"]["version"],
        started_at=fields["started_at"],
        finished_at=fields["finished_at"],
        prober_hostname=fields["prober"]["hostname"],
        prober_addresses=tuple(fields["prober"]["addresses"]),
        host_count=hosts,
        ready_hosts=ready,
        warnings=tuple(fields.get("warnings", ())),
        inventory_sha256=fields.get("inventory_sha256"),
    )


def host_from_document(host: Mapping[str, Any]) -> HostReport:
    """One host of a version 1 document as a HostReport."""
    return HostReport(
        name=host["name"],
        product=host["product"],
        address=host["address"],
        ip=host["ip"],
        checks=tuple(
            CheckResult(
                id=check["id"],
                requirement=check["requirement"],
                status=Status(check["status"]),
                summary=check["summary"],
                evidence=check["evidence"],
                remediation=check["remediation"],
                duration_ms=check["duration_ms"],
                port=check["port"],
                purpose=check["purpose"],
            )
            for check in host["checks"]
        ),
    )


class DownloadedReport:
    """A report document in a binary file, read one host at a time: `hosts()` reads them afresh from the first on
    each call (as html.generate and junit.generate ask), and `fields` holds every other key read so far, complete
    once a pass has read to the end. The service writes "schema_version" first, so it is known by the first host."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.fields: dict[str, Any] = {}
        self._complete = False

    def hosts(self) -> Generator[dict[str, Any], None, None]:
        """Each host of the report, in order."""
        self._file.seek(0)
        self.fields, self._complete = {}, False
        yield from _read_hosts(_Text(self._file), self.fields)
        self._complete = True

    def schema_version(self) -> str:
        """The report's version, read from its start."""
        hosts = self.hosts()
        next(hosts, None)
        hosts.close()
        return str(self.fields.get("schema_version"))

    def read_fields(self) -> dict[str, Any]:
        """Every key of the report but its hosts (one pass to the end when no pass has been made yet)."""
        if not self._complete:
            for _ in self.hosts():
                pass
        return self.fields


class _Text:
    """JSON values read one after another from a binary file, a chunk at a time: a value cut by the end of a chunk
    is decoded again once the next chunk is in."""

    _DECODER = json.JSONDecoder()

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._decode = codecs.getincrementaldecoder("utf-8")().decode
        self._buffer = ""
        self._at = 0
        self._ended = False

    def _more(self) -> bool:
        if self._ended:
            return False
        chunk = self._file.read(DOWNLOAD_CHUNK)
        self._ended = not chunk
        self._buffer = self._buffer[self._at :] + self._decode(chunk, final=self._ended)
        self._at = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space, left unread."""
        while True:
            while self._at < len(self._buffer) and self._buffer[self._at] in " \t\r\n":
                self._at += 1
            if self._at < len(self._buffer):
                return self._buffer[self._at]
            if not self._more():
                raise ValueError("the report ends too soon")

    def take(self, expected: str) -> str:
        """The next character, one of `expected`."""
        found = self.peek()
        if found not in expected:
            raise ValueError(f"expected one of {expected!r}, found {found!r}")
        self._at += 1
        return found

    def value(self) -> Any:
        """The next JSON value."""
        self.peek()
        while True:
            try:
                value, end = self._DECODER.raw_decode(self._buffer, self._at)
            except json.JSONDecodeError:
                if self._more():
                    continue
                raise
            # A number (or a value just at the end of the chunk) may go on in the next chunk.
            if end == len(self._buffer) and self._more():
                continue
            self._at = end
            return value

    def end(self) -> None:
        """Nothing but white space is left."""
        try:
            found = self.peek()
        except ValueError:
            return
        raise ValueError(f"more after the end of the report: {found!r}")


def _read_hosts(text: _Text, fields: dict[str, Any]) -> Iterator[dict[str, Any]]:
    text.take("{")
    if text.peek() == "}":
        text.take("}")
        text.end()
        return
    while True:
        key = text.value()
        if not isinstance(key, str) or key in fields:
            raise ValueError(f"a key that is not a string, or twice: {key!r}")
        text.take(":")
        if key == "hosts":
            fields[key] = None  # read, not kept
            text.take("[")
            if text.peek() == "]":
                text.take("]")
            else:
                while True:
                    host = text.value()
                    if not isinstance(host, dict):
                        raise ValueError("a host that is not an object")
                    yield host
                    if text.take(",]") == "]":
                        break
        else:
            fields[key] = text.value()
        if text.take(",}") == "}":
            break
    text.end()
    fields.pop("hosts", None)
