"""Reports made from two vantages, built from a real `preflight demo` report as the service's workers would send them.

"eu" is the demo's report of the checks its loopback servers answer; "us" is the same report with the SSH port
filtered, as a firewall that allow-lists only the EU office would make it.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from preflight import vantages

# The checks the demo's own servers answer; the others (public-ip, vantage on loopback...) depend on the machine.
SERVED = ("tcp", "service", "ssh-root", "gui-login")


def demo_report(folder: Path) -> dict[str, Any]:
    """A real report: `preflight demo` run as a user runs it."""
    completed = subprocess.run(
        [sys.executable, "-m", "preflight", "demo", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    document: dict[str, Any] = json.loads((folder / "demo-report.json").read_text())
    return document


def only_checks(document: Mapping[str, Any], kinds: Iterable[str] = SERVED) -> dict[str, Any]:
    """The report with only these kinds of check, its verdicts recounted."""
    kept = copy.deepcopy(dict(document))
    for host in kept["hosts"]:
        host["checks"] = [check for check in host["checks"] if check["id"].split("/")[0] in set(kinds)]
    return recount(kept)


def recount(document: dict[str, Any]) -> dict[str, Any]:
    for host in document["hosts"]:
        host["ready"] = not any(check["status"] in ("fail", "error") for check in host["checks"])
    ready = sum(host["ready"] for host in document["hosts"])
    document["summary"] = {"hosts": len(document["hosts"]), "ready": ready, "not_ready": len(document["hosts"]) - ready}
    return document


def ssh_port(host: Mapping[str, Any]) -> int:
    return int(next(check["port"] for check in host["checks"] if check["id"].startswith("ssh-root/")))


def filtered(document: Mapping[str, Any], host_name: str, egress_address: str = "198.51.100.20") -> dict[str, Any]:
    """The report as seen from where the host's firewall drops SSH: tcp filtered, what needs it not attempted."""
    seen = copy.deepcopy(dict(document))
    seen["prober"]["egress_address"] = egress_address
    host = next(host for host in seen["hosts"] if host["name"] == host_name)
    port = ssh_port(host)
    for check in host["checks"]:
        if check["id"] == f"tcp/{port}":
            check.update(
                status="fail",
                summary=f"TCP {port} is filtered: no answer",
                remediation=f"Allow TCP {port} from {egress_address} in the firewall.",
            )
            check["evidence"].update(state="filtered", reason="no-response")
        elif check["id"] in (f"service/{port}", f"ssh-root/{port}"):
            check.update(
                status="skipped",
                summary=f"not attempted: tcp/{port} is filtered",
                remediation=f"Fix tcp/{port} first.",
                evidence={"needs": f"tcp/{port}"},
            )
    return recount(seen)


def two_vantages(demo: Mapping[str, Any], host_name: str = "demo-pbx") -> dict[str, Any]:
    """A version 2 report: every served check passes from eu; from us, SSH on `host_name` is filtered."""
    eu = only_checks(demo)
    return vantages.combine([("eu", eu), ("us", filtered(eu, host_name))])
