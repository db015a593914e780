"""`preflight check INVENTORY --remote URL`: the CLI as a client of a preflight service. The inventory is
validated here exactly as for a local run, sent with its secrets over the connection, and checked from the
service's network; the signed report comes back and is written as a local run writes its reports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import SecretStr

from preflight.inventory import Host, Inventory
from preflight.model import CheckResult, HostReport, RunReport, Status

POLL_SECONDS = 1.0
NO_RESULTS = 999_999_999
REQUEST_SECONDS = 30.0


class RemoteError(Exception):
    """The service could not be used, or refused the inventory: one line, exit 2."""


@dataclass(frozen=True, slots=True)
class RemoteResult:
    document: Mapping[str, Any]  # version 1 from one vantage, version 2 from several (preflight.vantages)
    report_json: bytes
    signature: bytes


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
) -> RemoteResult:
    """Submit the inventory, wait for the verdict, and fetch the signed report."""
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
    try:
        answer = session.post(urljoin(base, "api/v1/checks"), json=body, timeout=REQUEST_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        raise RemoteError(f"--remote {url}: cannot reach the service ({type(exc).__name__})") from None
    if answer.status_code != 202:
        raise RemoteError(f"the service refused the check ({answer.status_code}): {_reason(answer)}")
    status_url = urljoin(base, answer.json()["status_url"].lstrip("/"))
    give_up = time.monotonic() + deadline_seconds
    while True:
        try:
            # Only the counts while waiting: the results come with the report.
            state = session.get(status_url, params={"since": NO_RESULTS}, timeout=REQUEST_SECONDS).json()
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
        time.sleep(POLL_SECONDS)
    links = state["links"]
    report_json = session.get(urljoin(base, links["report_json"].lstrip("/")), timeout=REQUEST_SECONDS).content
    signature = session.get(urljoin(base, links["signature"].lstrip("/")), timeout=REQUEST_SECONDS).content
    # A report too large to be part of the answer (thousands of hosts) is read from its own download.
    document = state["report"] if state["report"] is not None else json.loads(report_json)
    return RemoteResult(document, report_json, signature)


def _reason(answer: Any) -> str:
    try:
        return str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        return answer.reason or "no reason given"


def from_document(document: Mapping[str, Any]) -> RunReport:
    """A RunReport again from its version 1 document, so the terminal views show a remote run as a local one."""
    if document.get("schema_version") != "1":
        raise ValueError(f"a version {document.get('schema_version')} report has no single RunReport")
    return RunReport(
        tool_version=document["tool"]["version"],
        started_at=document["started_at"],
        finished_at=document["finished_at"],
        prober_hostname=document["prober"]["hostname"],
        prober_addresses=tuple(document["prober"]["addresses"]),
        hosts=tuple(
            HostReport(
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
            for host in document["hosts"]
        ),
        warnings=tuple(document.get("warnings", ())),
        inventory_sha256=document.get("inventory_sha256"),
    )
