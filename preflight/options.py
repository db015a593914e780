"""How the user asked this run to probe (command-line choices), carried by every Target to its probe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RunOptions:
    tcp_method: str = "auto"
    # None: the per-user default file (see ssh_root); a path: that OpenSSH-format known_hosts file.
    known_hosts: Path | None = None
    strict_host_keys: bool = False
