"""JUnit XML for CI servers: one testsuite per host, one testcase per check, classed by host.

From several vantages, one testcase per vantage and check, named `<vantage>/<check id>`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from preflight import vantages
from preflight.model import RunReport
from preflight.render.json import to_document

_COUNTED = {"fail": "failures", "error": "errors", "skipped": "skipped"}


def render(report: RunReport) -> str:
    return render_document(to_document(report))


def render_document(document: Mapping[str, Any]) -> str:
    """JUnit XML of a report document (the JSON contract), so a saved report renders the same way."""
    return "".join(generate(document, lambda: document["hosts"]))


def generate(report: Mapping[str, Any], hosts: Callable[[], Iterable[Mapping[str, Any]]]) -> Iterator[str]:
    """JUnit XML piece by piece, for a report of any size: `report` is the document (its hosts are not read), and
    each call of `hosts` reads its hosts again from the first. The totals open the file, so they are read twice."""
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    total_seconds = 0.0
    any_host = False
    for host in hosts():
        counts, seconds = _tally(_cases(report, host))
        for name, count in counts.items():
            totals[name] += count
        total_seconds += seconds
        any_host = True
    suites = ET.Element("testsuites", name="preflight")
    for name, count in totals.items():
        if name != "skipped":  # junit-10.xsd counts skips per testsuite only
            suites.set(name, str(count))
    suites.set("time", f"{total_seconds:.3f}")
    empty = ET.tostring(suites, encoding="unicode", xml_declaration=True)
    if not any_host:
        yield empty + "\n"
        return
    yield empty.removesuffix(" />") + ">"
    for host in hosts():
        suite = _suite(report, host)
        ET.indent(suite, level=1)
        yield "\n  " + ET.tostring(suite, encoding="unicode")
    yield "\n</testsuites>\n"


def _cases(report: Mapping[str, Any], host: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    if vantages.is_multi(report):
        # A CI server lists testcases by name: `us/tcp/2020` says where the check was made from.
        return [(f"{result['name']}/", check) for result in host["vantages"] for check in result["checks"]]
    return [("", check) for check in host["checks"]]


def _tally(cases: list[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, int], float]:
    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    seconds = 0.0
    for _, check in cases:
        seconds += check["duration_ms"] / 1000
        counts["tests"] += 1
        if check["status"] in _COUNTED:
            counts[_COUNTED[check["status"]]] += 1
    return counts, seconds


def _suite(report: Mapping[str, Any], host: Mapping[str, Any]) -> ET.Element:
    suite = ET.Element("testsuite", name=host["name"], timestamp=report["started_at"].rstrip("Z"))
    properties = ET.SubElement(suite, "properties")
    if vantages.is_multi(report):
        suite.set("hostname", ", ".join(v["prober"]["hostname"] or v["name"] for v in report["vantages"]))
        for name in ("product", "address", "ready", "verdict"):
            ET.SubElement(properties, "property", name=name, value=_text(host[name]))
    else:
        suite.set("hostname", report["prober"]["hostname"] or "localhost")
        for name in ("product", "address", "ip", "ready"):
            ET.SubElement(properties, "property", name=name, value=_text(host[name]))
    cases = _cases(report, host)
    for prefix, check in cases:
        _testcase(suite, host["name"], check, prefix)
    counts, seconds = _tally(cases)
    for name, count in counts.items():
        suite.set(name, str(count))
    suite.set("time", f"{seconds:.3f}")
    return suite


def _testcase(suite: ET.Element, host: str, check: Mapping[str, Any], prefix: str) -> None:
    seconds = f"{check['duration_ms'] / 1000:.3f}"
    case = ET.SubElement(suite, "testcase", classname=host, name=prefix + check["id"], time=seconds)
    details = "\n".join(
        [
            f"requirement: {check['requirement']}",
            f"what to do: {check['remediation']}",
            f"evidence: {json.dumps(check['evidence'], ensure_ascii=False, sort_keys=True)}",
        ]
    )
    status = check["status"]
    if status == "fail":
        ET.SubElement(case, "failure", message=check["summary"], type="fail").text = details
    elif status == "error":
        ET.SubElement(case, "error", message=check["summary"], type="error").text = details
    elif status == "skipped":
        ET.SubElement(case, "skipped", message=check["summary"])
    elif status == "warn":
        # JUnit has no warning: a warning passes, and says so where CI servers show a test's output.
        ET.SubElement(case, "system-out").text = f"WARNING: {check['summary']}\n{details}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
