"""Real firewall rules inside a lab container's own network namespace, set from the host with nsenter and nft."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from tests.lab import LabTarget
from tests.requirements import need_tool


def apply_ruleset(target: LabTarget, ruleset: str) -> None:
    """Load `ruleset` (nft syntax) into the container's namespace; the image itself needs no nft or NET_ADMIN."""
    pid = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Pid}}", target.container_id],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    subprocess.run(["nsenter", "-t", pid, "-n", "nft", "-f", "-"], input=ruleset, text=True, check=True, timeout=30)


def require_nmap() -> str:
    return need_tool("nmap", "nmap")


def nmap_states(ip: str, ports: Sequence[int], scan_type: str) -> dict[int, tuple[str, str]]:
    """(state, reason) for each port, as `nmap -n -Pn --reason` reports them for this lab host."""
    printed = subprocess.run(
        [require_nmap(), "-n", "-Pn", scan_type, "--reason", "-T4", "-p", ",".join(map(str, ports)), "-oX", "-", ip],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    states = {}
    for port in ET.fromstring(printed).iter("port"):  # noqa: S314 - nmap's XML from this run
        state = port.find("state")
        if state is not None:
            states[int(port.get("portid", "0"))] = (state.get("state", ""), state.get("reason", ""))
    return states
