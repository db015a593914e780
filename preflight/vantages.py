"""Reports from several vantage points: what each vantage saw, combined into one report document.

A report from one vantage stays a version "1" document (its `prober.vantage` names the vantage). A report from
several is version "2": per host, one result set per vantage, and a verdict that says which vantages pass
("ready from eu; NOT ready from us: tcp/2020 filtered"). Pure functions of report documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from preflight.render.json import DocumentWriter

SCHEMA_VERSION_MULTI = "2"
NOT_READY_STATUSES = ("fail", "error")
# How many problems a verdict names per vantage before "and N more".
VERDICT_PROBLEMS = 3


def merge_batches(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One vantage's batches (version 1 documents of disjoint hosts) as one version 1 document."""
    if not documents:
        raise ValueError("no batch to merge")
    first = documents[0]
    hosts = [host for document in documents for host in document["hosts"]]
    hostnames = list(dict.fromkeys(document["prober"]["hostname"] for document in documents))
    addresses = list(dict.fromkeys(a for document in documents for a in document["prober"]["addresses"]))
    prober: dict[str, Any] = {"hostname": ", ".join(hostnames), "addresses": addresses}
    for key in ("vantage", "egress_address"):
        if key in first["prober"]:
            prober[key] = first["prober"][key]
    merged: dict[str, Any] = {
        **first,
        "started_at": min(document["started_at"] for document in documents),
        "finished_at": max(document["finished_at"] for document in documents),
        "prober": prober,
        "hosts": hosts,
        "summary": _summary(hosts),
        "warnings": list(dict.fromkeys(w for document in documents for w in document.get("warnings", []))),
    }
    return merged


def combine(
    per_vantage: Sequence[tuple[str, Mapping[str, Any]]], inventory_sha256: str | None = None
) -> dict[str, Any]:
    """The report of a check made from these vantages (each a version 1 document of the same hosts, in order)."""
    if not per_vantage:
        raise ValueError("no vantage to combine")
    if len(per_vantage) == 1:
        name, only = per_vantage[0]
        single = {**only, "prober": {**only["prober"], "vantage": name}}
        if inventory_sha256:
            single["inventory_sha256"] = inventory_sha256
        return single
    first = per_vantage[0][1]
    for name, document in per_vantage:
        if len(document["hosts"]) != len(first["hosts"]):
            raise ValueError(
                f"vantage {name} reports {len(document['hosts'])} host(s) where {len(first['hosts'])} were expected"
            )
    names = [name for name, _ in per_vantage]
    if len(set(names)) != len(names):
        raise ValueError(f"a vantage is named twice: {', '.join(names)}")
    hosts = []
    for index, host in enumerate(first["hosts"]):
        results = []
        for name, document in per_vantage:
            seen = document["hosts"][index]
            if seen["name"] != host["name"]:
                raise ValueError(f"vantage {name} reports host {seen['name']} where {host['name']} was expected")
            results.append({"name": name, "ip": seen["ip"], "ready": seen["ready"], "checks": seen["checks"]})
        hosts.append(
            {
                "name": host["name"],
                "product": host["product"],
                "address": host["address"],
                "ready": all(result["ready"] for result in results),
                "verdict": verdict(results),
                "vantages": results,
            }
        )
    combined: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION_MULTI,
        "tool": first["tool"],
        "started_at": min(document["started_at"] for _, document in per_vantage),
        "finished_at": max(document["finished_at"] for _, document in per_vantage),
        "vantages": [
            {
                "name": name,
                "prober": {**document["prober"], "vantage": name},
                "started_at": document["started_at"],
                "finished_at": document["finished_at"],
                "summary": document["summary"],
            }
            for name, document in per_vantage
        ],
        "summary": _summary(hosts),
        "hosts": hosts,
        "warnings": list(dict.fromkeys(w for _, document in per_vantage for w in document.get("warnings", []))),
    }
    sha = inventory_sha256 or first.get("inventory_sha256")
    if sha:
        combined["inventory_sha256"] = sha
    return combined


def verdict(results: Sequence[Mapping[str, Any]]) -> str:
    """`ready from eu; NOT ready from us: tcp/2020 filtered`: which vantages pass, and why the others do not.

    Vantages that fail for the same reasons share one part (`NOT ready from us, asia: tcp/2020 filtered`).
    """
    ready = [result["name"] for result in results if result["ready"]]
    parts = [f"ready from {', '.join(ready)}"] if ready else []
    failing: dict[str, list[str]] = {}
    for result in results:
        if result["ready"]:
            continue
        problems = [_problem(check) for check in result["checks"] if check["status"] in NOT_READY_STATUSES]
        shown = ", ".join(problems[:VERDICT_PROBLEMS])
        more = f" and {len(problems) - VERDICT_PROBLEMS} more" if len(problems) > VERDICT_PROBLEMS else ""
        failing.setdefault(shown + more, []).append(result["name"])
    parts.extend(f"NOT ready from {', '.join(names)}: {why}" for why, names in failing.items())
    return "; ".join(parts)


def _problem(check: Mapping[str, Any]) -> str:
    state = check.get("evidence", {}).get("state") if isinstance(check.get("evidence"), Mapping) else None
    return f"{check['id']} {state}" if isinstance(state, str) else f"{check['id']} {check['status']}"


def differing_checks(host: Mapping[str, Any]) -> list[str]:
    """The check ids whose status is not the same from every vantage: the rows of a vantage-by-check matrix."""
    statuses: dict[str, list[str]] = {}
    for result in host["vantages"]:
        for check in result["checks"]:
            statuses.setdefault(check["id"], []).append(check["status"])
    # A check that one vantage did not run at all differs too: its cell is empty.
    return [check_id for check_id, seen in statuses.items() if len(set(seen)) > 1 or len(seen) != len(host["vantages"])]


def matrix(host: Mapping[str, Any]) -> list[tuple[str, list[Mapping[str, Any] | None]]]:
    """A host's vantage-by-check matrix: per differing check, its check from each vantage (None: not run there)."""
    rows = []
    for check_id in differing_checks(host):
        cells: list[Mapping[str, Any] | None] = []
        for result in host["vantages"]:
            cells.append(next((check for check in result["checks"] if check["id"] == check_id), None))
        rows.append((check_id, cells))
    return rows


def observed(check: Mapping[str, Any]) -> str:
    """What a check saw on the wire, when its evidence says (`open/syn-ack`, `filtered/no-response`), else ""."""
    evidence = check.get("evidence")
    if not isinstance(evidence, Mapping) or not isinstance(evidence.get("state"), str):
        return ""
    reason = evidence.get("reason")
    return f"{evidence['state']}/{reason}" if isinstance(reason, str) and reason else str(evidence["state"])


def is_multi(document: Mapping[str, Any]) -> bool:
    """True for a report made from several vantages (version 2)."""
    return document.get("schema_version") == SCHEMA_VERSION_MULTI


def _summary(hosts: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    ready = sum(1 for host in hosts if host["ready"])
    return {"hosts": len(hosts), "ready": ready, "not_ready": len(hosts) - ready}


def stream_combined(
    write: Callable[[str], object],
    vantages: Sequence[str],
    batch_count: int,
    load: Callable[[str, int], Mapping[str, Any]],
    inventory_sha256: str | None = None,
) -> dict[str, int]:
    """Write the report of `vantages` by `batch_count` batches as JSON, holding one batch per vantage at a time.

    The document is the one `combine(merge_batches(...))` would make, written by `write_document` (hosts first, so
    nothing about them has to be known before they are written). Returns its summary.
    """
    report = CombinedReport(write, vantages, inventory_sha256)
    for batch in range(batch_count):
        report.add([(name, load(name, batch)) for name in vantages])
    return report.end()


HOST_LINES = "host-lines/1"


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A batch's version 1 report as a worker sends it: every field but its hosts, each host's verdict, and each
    host as the one line of JSON a report holds. A report from one vantage is written from those lines as they
    came, never decoded into objects and encoded again (a quarter of the service's CPU, when it was)."""

    fields: Mapping[str, Any]
    hosts: Sequence[str]
    ready: Sequence[bool]

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> EncodedBatch:
        """A whole version 1 document, encoded (each host exactly as `render.json.DocumentWriter.host` writes it)."""
        hosts = document["hosts"]
        fields = {key: value for key, value in document.items() if key != "hosts"}
        return cls(fields, [json.dumps(host, ensure_ascii=False) for host in hosts], [host["ready"] for host in hosts])

    def text(self) -> str:
        """Its text: a first line naming the format with the fields and verdicts, then a line per host."""
        header = {"format": HOST_LINES, "fields": dict(self.fields), "ready": list(self.ready)}
        return "\n".join([json.dumps(header, ensure_ascii=False, separators=(",", ":")), *self.hosts])

    def document(self) -> dict[str, Any]:
        return {**self.fields, "hosts": [json.loads(line) for line in self.hosts]}


def read_batch(text: str) -> Mapping[str, Any] | EncodedBatch:
    """A batch's report from its stored text: an EncodedBatch (`EncodedBatch.text`), or the whole document an
    earlier release stored (one line of JSON). ValueError for anything else: each host must be a JSON object on a
    line of its own, with a verdict."""
    first, _, rest = text.partition("\n")
    header = json.loads(first)
    if not isinstance(header, dict):
        raise ValueError("a batch's report must be a JSON object")
    if header.get("format") != HOST_LINES:
        if rest:
            raise ValueError("a batch's report of an earlier release is one line")
        return header
    fields, ready = header.get("fields"), header.get("ready")
    hosts = rest.split("\n") if rest else []
    if not isinstance(fields, dict) or not isinstance(ready, list) or not all(isinstance(flag, bool) for flag in ready):
        raise ValueError("a batch's report must have its fields and a verdict per host")
    if len(hosts) != len(ready):
        raise ValueError(f"a batch's report has {len(hosts)} host(s) and {len(ready)} verdict(s)")
    if not all(line.startswith("{") and line.endswith("}") for line in hosts):
        raise ValueError("each host of a batch's report must be a JSON object on a line of its own")
    return EncodedBatch(fields, hosts, ready)


class CombinedReport:
    """`stream_combined` fed one batch at a time, as the batches come back: `add` each batch's documents (one per
    vantage, batches in order), then `end`. Only counts and each batch's header stay in memory."""

    def __init__(self, write: Callable[[str], object], vantages: Sequence[str], inventory_sha256: str | None) -> None:
        self.vantages = tuple(vantages)
        self._multi = len(self.vantages) > 1
        self._sha = inventory_sha256
        self._headers: dict[str, list[dict[str, Any]]] = {name: [] for name in self.vantages}
        self._ready = dict.fromkeys(self.vantages, 0)
        self._hosts = self._ready_hosts = 0
        self.batches = 0
        self._writer = DocumentWriter(write, SCHEMA_VERSION_MULTI if self._multi else "1")

    def add(self, documents: Sequence[tuple[str, Mapping[str, Any] | EncodedBatch]]) -> None:
        """The next batch: each vantage's document of it (or its EncodedBatch), in the order of `vantages`."""
        if tuple(name for name, _ in documents) != self.vantages:
            raise ValueError(f"batch {self.batches}: expected one document from each of {', '.join(self.vantages)}")
        name, first = documents[0]
        if not self._multi and isinstance(first, EncodedBatch):
            ready = sum(1 for flag in first.ready if flag)
            self._headers[name].append({**first.fields, "hosts": []})
            self._ready[name] += ready
            self._hosts += len(first.hosts)
            self._ready_hosts += ready
            for line in first.hosts:
                self._writer.host_text(line)
            self.batches += 1
            return
        plain = [(name, item.document() if isinstance(item, EncodedBatch) else item) for name, item in documents]
        for name, document in plain:
            self._headers[name].append({**document, "hosts": []})
            self._ready[name] += sum(1 for host in document["hosts"] if host["ready"])
        for host in combine(plain)["hosts"] if self._multi else plain[0][1]["hosts"]:
            self._hosts += 1
            self._ready_hosts += bool(host["ready"])
            self._writer.host(host)
        self.batches += 1

    def end(self) -> dict[str, int]:
        """Write the rest of the document; returns its summary."""
        merged = [(name, merge_batches(self._headers[name])) for name in self.vantages]
        fields = combine(merged, self._sha)
        fields.pop("hosts")
        fields.pop("schema_version")
        fields["summary"] = _counted(self._hosts, self._ready_hosts)
        for vantage in fields.get("vantages", []):
            vantage["summary"] = _counted(self._hosts, self._ready[vantage["name"]])
        self._writer.end(fields)
        return _counted(self._hosts, self._ready_hosts)


def _counted(hosts: int, ready: int) -> dict[str, int]:
    return {"hosts": hosts, "ready": ready, "not_ready": hosts - ready}
