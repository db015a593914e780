"""Start-up: how long `preflight --version` and `preflight validate` of N hosts take, and what they import.

Each command runs REPEATS times as a fresh process (the `preflight` console script of this interpreter's
environment, else `python -m preflight`), taking turns; the medians are printed with a bare `python -c pass` as
the floor no change to preflight can remove. CPU time (user + system, from wait4) is printed too: on a shared
machine it moves less than wall time. No root, no network: see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.measure import measured

# Libraries a command must not load unless it uses them; validate and --version use none of them (validate does
# use pydantic and yaml, for the inventory).
HEAVY = ("paramiko", "scapy", "jinja2", "starlette", "uvicorn", "sqlalchemy", "cryptography", "httpx")


def _preflight() -> list[str]:
    script = Path(sys.executable).parent / "preflight"
    return [str(script)] if script.exists() else [sys.executable, "-m", "preflight"]


def write_inventory(folder: Path, hosts: int) -> Path:
    """An inventory of `hosts` hosts at IP literals from the benchmarking range (validate sends nothing)."""
    lines = ["defaults:", "  product: serverware", "  require_public_ip: false", "hosts:"]
    lines += [f"  - {{name: h{index}, address: 198.19.{index // 250}.{index % 250 + 1}}}" for index in range(hosts)]
    path = folder / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _once(command: Sequence[str], output: Path) -> tuple[float, float]:
    usage = measured(command, output)
    if usage.status != 0:
        raise RuntimeError(f"{' '.join(command)} exited {usage.status}: {output.read_text()[-2000:]}")
    return usage.wall_seconds, usage.cpu_seconds


def imported(arguments: Sequence[str]) -> set[str]:
    """The top-level packages a preflight command imports, from `python -X importtime`."""
    command = [sys.executable, "-X", "importtime", "-m", "preflight", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000, help="hosts in the inventory validate reads (default 1000)")
    parser.add_argument("--repeats", type=int, default=15, help="runs of each command (default 15)")
    args = parser.parse_args()
    preflight = _preflight()
    with tempfile.TemporaryDirectory(prefix="pf-startup-") as folder:
        inventory = write_inventory(Path(folder), args.hosts)
        commands = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "preflight --version": [*preflight, "--version"],
            f"preflight validate ({args.hosts} hosts)": [*preflight, "validate", str(inventory)],
        }
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
        for _ in range(max(1, args.repeats)):
            for label, command in commands.items():
                times[label].append(_once(command, Path(folder) / "output.txt"))
        print(f"{'command':40} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'CPU ms':>8}")
        for label, runs in times.items():
            walls = [wall for wall, _ in runs]
            cpu = statistics.median(cpu for _, cpu in runs)
            print(
                f"{label:40} {1000 * statistics.median(walls):10.0f} {1000 * min(walls):8.0f} "
                f"{1000 * max(walls):8.0f} {1000 * cpu:8.0f}"
            )
        for arguments in (["--version"], ["validate", str(inventory)]):
            heavy = sorted(imported(arguments) & set(HEAVY))
            print(f"preflight {arguments[0]} imports: {', '.join(heavy) or 'none of ' + ', '.join(HEAVY)}")
    print("load average: " + " ".join(f"{load:.2f}" for load in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
