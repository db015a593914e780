"""Memory at scale: peak RSS of `preflight check --only public-ip,vantage,tcp --json` on N lab hosts.

It builds bench/scale.py's lab (N hosts x 5 ports with a known, seeded mix of open, closed and filtered ports),
runs preflight on it and records its wall time, its own peak RSS (wait4) and how many port states agree with the
lab's truth. `--before REV` also runs preflight as it was at git revision REV (a worktree in a temporary folder)
on the same lab and compares the two JSON reports host by host, leaving out what differs from run to run (times,
durations, round-trip times). `--phases` loads, plans, runs and renders a report the whole-document way, in one
process, and prints the RSS after each step: where the memory went before the reports were streamed.
Run as root: see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

from bench.measure import timed
from bench.scale import (
    PORTS,
    REACHABILITY_CHECKS,
    Endpoint,
    ScaleLab,
    iter_report_hosts,
    scale_lab,
    write_inventory,
)

REPO = Path(__file__).resolve().parent.parent
# What differs between two runs on the same lab: when they ran, and every time measured (duration_ms, rtt_ms,
# retry_after_ms: a key ending in _ms).
VOLATILE_KEYS = frozenset({"started_at", "finished_at"})


def run_check(
    source: Path, inventory: Path, workdir: Path, label: str, extra: Sequence[str] = ()
) -> tuple[float, float, Path]:
    """Wall seconds and peak RSS MB of one `preflight check` run from the source tree `source`, and its JSON."""
    report = workdir / f"{label}.json"
    command = [sys.executable, "-m", "preflight", "check", str(inventory), "--only", REACHABILITY_CHECKS,
               "--json", str(report), *extra]  # fmt: skip
    # Run from `source`, so `import preflight` finds that tree before the installed one.
    environment = {**os.environ, "PYTHONPATH": str(source)}
    with _cwd(source):
        wall, rss, status = timed(command, workdir / f"{label}.out", environment)
    if status not in (0, 1) or not report.exists():
        raise RuntimeError(f"{label}: preflight exited {status}: {(workdir / f'{label}.out').read_text()[-2000:]}")
    return wall, rss, report


@contextlib.contextmanager
def _cwd(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def agreement(report: Path, truth: Mapping[Endpoint, str]) -> tuple[int, int]:
    """How many of the lab's endpoints the report gives the state the lab set, and how many endpoints it has."""
    agreed = 0
    for host in iter_report_hosts(report):
        for check in host["checks"]:
            if check["id"].startswith("tcp/"):
                agreed += truth.get((host["address"], check["evidence"]["port"])) == check["evidence"]["state"]
    return agreed, len(truth)


def stable(value: Any) -> Any:
    """`value` without the keys whose values change from run to run."""
    if isinstance(value, dict):
        return {key: stable(item) for key, item in value.items() if key not in VOLATILE_KEYS and key[-3:] != "_ms"}
    if isinstance(value, list):
        return [stable(item) for item in value]
    return value


def header(report: Path) -> dict[str, Any]:
    """The report without its hosts, read line by line: the hosts array opens and closes at two spaces."""
    kept: list[str] = []
    inside = False
    with report.open(encoding="utf-8") as lines:
        for line in lines:
            bare = line.rstrip("\n")
            if not inside and bare == '  "hosts": [':
                inside = True
            elif inside and bare in ("  ],", "  ]"):
                inside = False
                if bare == "  ]":  # the last key: the one before it loses its comma
                    kept[-1] = kept[-1].rstrip().rstrip(",") + "\n"
            elif not inside:
                kept.append(line)
    document: dict[str, Any] = json.loads("".join(kept))
    return document


def _first_difference(old: Any, new: Any, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys():
        key = next(key for key in old if old[key] != new[key])
        return _first_difference(old[key], new[key], f"{where}.{key}")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        index = next(index for index, (a, b) in enumerate(zip(old, new, strict=True)) if a != b)
        return _first_difference(old[index], new[index], f"{where}[{index}]")
    return f"{where}: {json.dumps(old)[:300]} before, {json.dumps(new)[:300]} after"


def compare(before: Path, after: Path) -> list[str]:
    """Where two reports of the same lab differ, times and durations left out; empty when they say the same."""
    differences = []
    if stable(header(before)) != stable(header(after)):
        differences.append(f"the run's header: {stable(header(before))} != {stable(header(after))}")
    for index, (old, new) in enumerate(zip_longest(iter_report_hosts(before), iter_report_hosts(after))):
        if old is None or new is None:
            differences.append(f"hosts[{index}]: only in {'after' if old is None else 'before'}")
        elif stable(old) != stable(new):
            differences.append(f"hosts[{index}]{_first_difference(stable(old), stable(new))}")
        if len(differences) >= 5:
            break
    return differences


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """The repository at `revision`, checked out in a temporary folder and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="pf-before-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), revision],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)],
                       capture_output=True, timeout=120)  # fmt: skip


def phases(inventory_path: Path) -> None:
    """Load, plan, run and render the whole-document way, printing RSS (now and peak, MB) after each step."""
    started = time.monotonic()

    def step(name: str) -> None:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        now, peak = (int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))
        print(f"{name:44} {time.monotonic() - started:7.1f} s  RSS {now:7.1f} MB  peak {peak:7.1f} MB", flush=True)

    step("start")
    from preflight import cli  # noqa: F401 - what `preflight check` imports before it reads anything
    from preflight.inventory import load_inventory
    from preflight.plan import build_plan
    from preflight.probes import registry
    from preflight.profiles import load_profiles
    from preflight.render import html
    from preflight.render import json as json_report
    from preflight.runner import run_plan

    step("imports")
    profiles = load_profiles(known_checks=frozenset(registry()))
    inventory = load_inventory(inventory_path, profiles)
    step(f"inventory ({len(inventory.hosts)} hosts)")
    plans = build_plan(inventory, profiles, REACHABILITY_CHECKS.split(","))
    step(f"plans ({sum(len(plan.targets) for plan in plans)} targets)")
    report = run_plan(plans, timeout=10.0, concurrency=32)
    step("run: RunReport of every host")
    document = json_report.to_document(report)
    step("to_document: the whole report as dicts")
    text = json.dumps(document, indent=2, ensure_ascii=False)
    step(f"json.dumps: {len(text) / 1e6:.0f} MB of JSON text")
    del text
    page = html.render_document(document)
    step(f"HTML page: {len(page) / 1e6:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[10000], help="lab sizes to run (default 10000)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--before", metavar="REV", help="also run preflight at git revision REV and compare reports")
    parser.add_argument("--html", action="store_true", help="also write the HTML report (--html PATH)")
    parser.add_argument("--junit", action="store_true", help="also write the JUnit report (--junit PATH)")
    parser.add_argument("--phases", action="store_true", help="RSS after each step of a whole-document run")
    parser.add_argument("--phases-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phases_child is not None:
        phases(args.phases_child)
        return 0
    if os.geteuid() != 0:
        print("bench: run as root (it builds a network namespace)", file=sys.stderr)
        return 2
    failed = False
    with contextlib.ExitStack() as stack:
        before = stack.enter_context(worktree(args.before)) if args.before else None
        for hosts in args.hosts:
            with scale_lab(hosts, args.seed) as lab, tempfile.TemporaryDirectory(prefix="pf-memory-") as folder:
                failed |= _measure(lab, Path(folder), before, args)
    return 1 if failed else 0


def _measure(lab: ScaleLab, workdir: Path, before: Path | None, args: argparse.Namespace) -> bool:
    inventory = workdir / "inventory.yaml"
    write_inventory(lab, inventory)
    print(f"\n== {len(lab.addresses)} hosts x {len(PORTS)} ports = {len(lab.truth)} endpoints (seed {args.seed})")
    if args.phases:
        subprocess.run([sys.executable, "-m", "bench.memory", "--phases-child", str(inventory)], cwd=REPO,
                       check=True, timeout=3600)  # fmt: skip
    extra = [*(["--html", str(workdir / "report.html")] if args.html else []),
             *(["--junit", str(workdir / "report.xml")] if args.junit else [])]  # fmt: skip
    runs = []
    if before is not None:
        runs.append(("before " + args.before, *run_check(before, inventory, workdir, "before", extra)))
    runs.append(("after (this tree)", *run_check(REPO, inventory, workdir, "after", extra)))
    failed = False
    print(f"{'preflight':24} {'wall s':>8} {'peak RSS MB':>12} {'JSON MB':>8}  agreement with truth")
    for label, wall, rss, report in runs:
        agreed, total = agreement(report, lab.truth)
        size = report.stat().st_size / 1e6
        print(f"{label:24} {wall:8.1f} {rss:12.1f} {size:8.1f}  {100 * agreed / total:.2f}% ({agreed}/{total})")
        failed |= agreed != total
    for name in ("report.html", "report.xml"):
        if (workdir / name).exists():
            print(f"  {name}: {(workdir / name).stat().st_size / 1e6:.1f} MB")
    if before is not None:
        differences = compare(runs[0][3], runs[-1][3])
        print("reports before and after: " + ("the same, times and durations left out" if not differences else
                                              "DIFFER:\n  " + "\n  ".join(d[:600] for d in differences)))  # fmt: skip
        failed |= bool(differences)
    return failed


if __name__ == "__main__":
    sys.exit(main())
