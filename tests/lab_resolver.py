"""A lab resolver: preflight runs in a private mount namespace with its own hosts file and a DNS server nobody runs.

Inside the namespace /etc/hosts holds the lab's names, /etc/resolv.conf points at 127.0.0.1, where nothing listens,
so a name outside the hosts file fails at once and no query leaves the machine. glibc returns every hosts-file line
of a name only with `multi on` in /etc/host.conf (without it, only the first line), so the namespace sets that too.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.lab import Run, run_preflight
from tests.requirements import need

LAB_DOMAIN = "lab.test"
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
HOST_CONF = "multi on\n"
NSSWITCH_CONF = "hosts: files dns\n"


def namespace_unavailable_reason() -> str | None:
    """Why a private mount namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "the lab resolver needs root (mount --bind in a private mount namespace)"
    if shutil.which("unshare") is None:
        return "the lab resolver needs unshare (util-linux)"
    completed = subprocess.run(["unshare", "--mount", "--", "true"], capture_output=True, text=True, timeout=30)
    if completed.returncode != 0:
        return f"unshare --mount failed: {completed.stderr.strip()}"
    return None


def require_lab_resolver() -> None:
    """Skip without root or unshare on a developer machine; in CI that is a failure, never a skip."""
    reason = namespace_unavailable_reason() or _local_dns_server_reason()
    need(reason is None, reason or "")


def _local_dns_server_reason() -> str | None:
    # A DNS server on 127.0.0.1:53 could forward the lab's lookups to the real internet; the lab needs silence there.
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", 53))
            except OSError as exc:
                return f"something holds 127.0.0.1:53 ({exc.strerror}); the lab resolver must not reach a real server"
    return None


def hosts_file(entries: Mapping[str, Sequence[str]]) -> str:
    """A hosts file with localhost and one line per (address, name) pair of `entries` (name -> addresses)."""
    lines = ["127.0.0.1 localhost", "::1 localhost"]
    lines += [f"{address} {name}" for name, addresses in entries.items() for address in addresses]
    return "\n".join(lines) + "\n"


def namespace_command(folder: Path, entries: Mapping[str, Sequence[str]]) -> list[str]:
    """A command prefix that runs the rest of its arguments with the lab's hosts file and resolver."""
    files = folder / "lab-resolver"
    files.mkdir(exist_ok=True)
    contents = {
        "/etc/hosts": hosts_file(entries),
        "/etc/resolv.conf": RESOLV_CONF,
        "/etc/host.conf": HOST_CONF,
        "/etc/nsswitch.conf": NSSWITCH_CONF,
    }
    binds = []
    for system_path, text in contents.items():
        lab_path = files / Path(system_path).name
        lab_path.write_text(text)
        binds.append(f"mount --bind {shlex.quote(str(lab_path))} {system_path}")
    script = " && ".join(binds) + ' && exec "$0" "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]


def run_preflight_with_names(
    folder: Path,
    inventory: Path,
    entries: Mapping[str, Sequence[str]],
    environ: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Run:
    """`preflight check` as run_preflight runs it, inside a namespace where `entries` (name -> addresses) resolve."""
    command = [*namespace_command(folder, entries), sys.executable, "-m", "preflight"]
    return run_preflight(folder, inventory, environ or {}, extra_args, command=command)


def resolve_in_namespace(folder: Path, entries: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """What getaddrinfo returns for `name` inside the lab namespace (an empty list when it does not resolve)."""
    lookup = (
        "import socket, sys\n"
        "try:\n"
        "    infos = socket.getaddrinfo(sys.argv[1], None, socket.AF_UNSPEC, socket.SOCK_STREAM)\n"
        "except socket.gaierror:\n"
        "    infos = []\n"
        "print(' '.join(dict.fromkeys(info[4][0] for info in infos)))\n"
    )
    completed = subprocess.run(
        [*namespace_command(folder, entries), sys.executable, "-c", lookup, name],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return completed.stdout.split()
