"""Command line: parse arguments, wire the stages together, choose the exit code."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

# Only what parsing the command line needs is imported here: each command imports what it uses, so that
# `preflight --version` or `validate` does not load the scanner, the reports, SSH or cryptography.
from preflight import __version__
from preflight.portscan.methods import METHODS
from preflight.probes import registry
from preflight.redaction import log_to_stderr
from preflight.service.commands import CommandError
from preflight.service.commands import add_commands as add_service_commands

if TYPE_CHECKING:
    from preflight.inventory import Inventory
    from preflight.plan import iter_plan
    from preflight.runner import PlanRun
else:
    # Module attributes, so a test can replace them, that import the planner and runner only when a check runs.
    def iter_plan(*args: Any, **kwargs: Any) -> Any:
        from preflight.plan import iter_plan as plan

        return plan(*args, **kwargs)

    def PlanRun(*args: Any, **kwargs: Any) -> Any:  # named as the class it stands in for
        from preflight.runner import PlanRun as run

        return run(*args, **kwargs)


EXIT_READY, EXIT_NOT_READY, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 32


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600 seconds, not {text}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 4096:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 4096, not {text!r}")
    return int(text)


def _kinds(text: str) -> list[str]:
    known = sorted(registry())
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in known]
    if not kinds:
        raise argparse.ArgumentTypeError(f"names no check kind; known: {', '.join(known)}")
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown check kind {', '.join(unknown)}; known: {', '.join(known)}")
    return kinds


CHECK_EPILOG = """\
example:
  preflight check inventory.yaml --json report.json --html report.html

exit codes:
  0    every host is ready
  1    at least one host is not ready (the reports say what to fix)
  2    usage or input error: a bad option, inventory or output path; nothing was probed
  130  interrupted (Ctrl-C); no report was written
"""


def _host_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("names no host")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="preflight", description="Prove PBXware and SERVERware hosts are ready for remote support.")
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    # Not required: a bare `preflight` prints the whole help, with the list of commands, rather than one line.
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    check = commands.add_parser(
        "check",
        help="probe every host in an inventory and report readiness",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=CHECK_EPILOG,
    )
    check.add_argument("inventory", type=Path, metavar="INVENTORY")
    check.add_argument("--json", metavar="PATH|-", help="write the JSON report to PATH, or to stdout with -")
    check.add_argument("--html", type=Path, metavar="PATH", help="write the HTML report to PATH")
    check.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML (a testcase per check) to PATH")
    # One name per --host (repeat it, or separate names with commas), so `--host NAME INVENTORY` keeps its inventory.
    check.add_argument(
        "--host",
        action="extend",
        type=_host_names,
        default=[],
        metavar="NAME[,NAME...]",
        help="check only this host; repeat --host, or separate names with commas, for more",
    )
    check.add_argument(
        "--only",
        type=_kinds,
        default=[],
        metavar="KIND,...",
        help=f"run only these kinds of check: {', '.join(sorted(registry()))}",
    )
    check.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline for each check (default %(default)s)",
    )
    check.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="hosts whose logins and other per-host checks run at once (default %(default)s); "
        "the port scan covers up to 4,096 hosts together",
    )
    check.add_argument("-q", "--quiet", action="store_true", help="print only the final verdict line")
    check.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr: -v each check as it ends, -vv also what the SSH and HTTP libraries do; "
        "every secret is masked",
    )

    check.add_argument(
        "--tcp-method",
        choices=METHODS,
        default="auto",
        help="how ports are probed: raw SYN (needs root or CAP_NET_RAW), connect(), or auto: SYN when allowed "
        "(default %(default)s)",
    )
    check.add_argument(
        "--known-hosts",
        type=Path,
        metavar="PATH",
        help="OpenSSH known_hosts file that records each SSH host key on first contact and refuses a changed one "
        "(default $XDG_STATE_HOME/preflight/known_hosts, else ~/.local/state/preflight/known_hosts)",
    )
    check.add_argument(
        "--strict-host-keys",
        action="store_true",
        help="send no password to an SSH host whose key is not yet in the known_hosts file or pinned in the inventory",
    )
    check.add_argument(
        "--sign",
        type=Path,
        metavar="KEYFILE",
        help="sign the JSON report with this unencrypted Ed25519 OpenSSH private key (created 0600, with KEYFILE.pub, "
        "if absent) and write the SSH signature to PATH.sig; needs --json PATH",
    )

    check.add_argument(
        "--remote",
        metavar="URL",
        help="have a preflight service check the hosts from its network (https://...); the report comes back signed",
    )
    check.add_argument(
        "--token",
        default=os.environ.get("PREFLIGHT_TOKEN", ""),
        metavar="TOKEN",
        help="the service's API token for --remote (default $PREFLIGHT_TOKEN, which keeps it out of ps)",
    )
    check.add_argument("--ticket", default="", metavar="REF", help="the ticket the remote check belongs to")
    check.add_argument(
        "--vantage",
        action="append",
        default=[],
        metavar="NAME",
        help="with --remote: check from this vantage of the service (repeat for more; default: every live one)",
    )

    validate = commands.add_parser("validate", help="check an inventory file without probing anything")
    validate.add_argument("inventory", type=Path, metavar="INVENTORY")

    demo = commands.add_parser(
        "demo", help="check two throwaway hosts on loopback (no Docker, no root) and write demo reports"
    )
    demo.add_argument(
        "--out", type=Path, metavar="DIR", help="where to write the reports, created if missing (default: this folder)"
    )

    render = commands.add_parser(
        "render", help="render a saved JSON report again, after checking it against the schema"
    )
    render.add_argument("report", type=Path, metavar="REPORT.json")
    render.add_argument("--html", type=Path, metavar="PATH", help="write the HTML report to PATH")
    render.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML to PATH")

    verify = commands.add_parser(
        "verify", help="check a report's SSH signature: exit 0 valid, 1 invalid, 2 usage (as ssh-keygen -Y verify)"
    )
    verify.add_argument("report", type=Path, metavar="REPORT.json")
    verify.add_argument(
        "--signature", type=Path, metavar="SIG", help="the armored SSH signature (default REPORT.json.sig)"
    )
    verify.add_argument(
        "--key",
        type=Path,
        metavar="PUBKEY",
        help="the trusted public key: a .pub file or an allowed_signers line; required unless "
        "$XDG_STATE_HOME/preflight/signing_key.pub (else ~/.local/state/preflight/signing_key.pub) exists, "
        "which is then the default",
    )
    add_service_commands(commands, _positive_int, _positive_float, METHODS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # paramiko logs every failed handshake with a traceback; each failure is already a finding.
    log_to_stderr(0, ())
    parser = build_parser()
    args = parser.parse_args(argv)
    from preflight.located_yaml import ConfigError
    from preflight.remote import RemoteError

    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with contextlib.ExitStack() as outputs:
            return _run(args, outputs)
    except (ConfigError, UsageError) as exc:
        # An inventory reports every error it has, one line each.
        for line in str(exc).splitlines():
            print(f"preflight: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        # Only report writing does I/O outside the probes; the probes turn their own errors into findings.
        print(f"preflight: error: cannot write the report: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, RemoteError) as exc:
        print(f"preflight: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, outputs: contextlib.ExitStack) -> int:
    if args.command == "render":
        return _render_saved(args, outputs)
    if args.command == "demo":
        return _demo(args, outputs)
    if args.command == "verify":
        return _verify(args)
    if args.command in ("serve", "worker", "users", "tokens"):
        from preflight.service import commands as service_commands

        return service_commands.run(args)
    from preflight.inventory import load_inventory
    from preflight.profiles import load_profiles

    profiles = load_profiles(known_checks=frozenset(registry()))
    inventory = load_inventory(args.inventory, profiles)
    exposure = inventory.exposure_warning()
    warnings = ((exposure,) if exposure else ()) + inventory.warnings
    for warning in warnings:
        print(f"preflight: warning: {warning}", file=sys.stderr)
    if args.command == "validate":
        print(f"{args.inventory}: {len(inventory.hosts)} host(s), valid")
        return EXIT_READY
    inventory = _select_hosts(inventory, args.host)
    if args.remote is not None:
        _refuse_remote_misuse(args)
    elif args.vantage:
        raise UsageError("--vantage: choosing a vantage needs --remote URL (a local run checks from this machine)")
    # Report paths are checked before any probe is sent, so a bad path costs nothing and exits 2; each report goes to
    # a temporary file renamed into place only when the run ends well, so an interrupted run leaves no part of one.
    json_path = None if args.json in (None, "-") else Path(args.json)
    _prepare_outputs(
        [("the inventory", args.inventory), ("--known-hosts", args.known_hosts), ("--sign", args.sign)],
        [
            ("--json", json_path),
            ("--sign", None if args.sign is None or json_path is None else Path(f"{json_path}.sig")),
            ("--remote", None if args.remote is None or json_path is None else Path(f"{json_path}.sig")),
            ("--html", args.html),
            ("--junit", args.junit),
        ],
    )
    sign_json = None if args.sign is None else _json_signer(args, outputs)
    if args.known_hosts is not None:
        _check_known_hosts(args.known_hosts)
    human = sys.stderr if args.json == "-" else sys.stdout
    log_to_stderr(args.verbose, [secret for host in inventory.hosts for secret in host.secrets()])

    if args.remote is None:
        return _check_locally(args, profiles, inventory, warnings, human, sign_json)
    return _check_remotely(args, inventory, human, json_path)


def _check_locally(
    args: argparse.Namespace,
    profiles: Mapping[str, Any],
    inventory: Inventory,
    warnings: tuple[str, ...],
    human: TextIO,
    sign_json: Callable[[bytes], None] | None,
) -> int:
    """Probe from this machine; each report is written as the hosts complete, and put in place once the run ends."""
    from preflight.options import RunOptions
    from preflight.portscan import raw_sockets_allowed
    from preflight.progress import progress_for
    from preflight.report_stream import RunReports

    options = RunOptions(
        tcp_method=args.tcp_method, known_hosts=args.known_hosts, strict_host_keys=args.strict_host_keys
    )
    if args.tcp_method == "syn" and not raw_sockets_allowed():
        raise UsageError("--tcp-method syn needs raw sockets: run as root or grant CAP_NET_RAW, or use connect")
    json_path = None if args.json in (None, "-") else Path(args.json)
    # The HTML and JUnit reports are rendered from a spool of the hosts, kept beside them.
    spool = next((path.parent for path in (args.html, args.junit) if path is not None), None)
    with RunReports(json_path, sys.stdout if args.json == "-" else None, spool) as reports:
        with progress_for(human, len(inventory.hosts), args.quiet) as progress:
            run = PlanRun(
                iter_plan(inventory, profiles, args.only, options),
                timeout=args.timeout,
                concurrency=args.concurrency,
                on_host_done=progress.host_done,
            )
            summary = reports.write(
                run, lambda: replace(run.summary(), warnings=warnings, inventory_sha256=inventory.sha256)
            )
        progress.finish(summary)
        digest = reports.commit_json()
        if json_path is not None and not args.quiet:
            print(f"JSON report: {args.json}", file=human)
        if sign_json is not None:
            sign_json(digest)
        if args.html is not None:
            reports.write_html(args.html)
            if not args.quiet:
                print(f"HTML report: {args.html}", file=human)
        if args.junit is not None:
            reports.write_junit(args.junit)
            if not args.quiet:
                print(f"JUnit XML: {args.junit}", file=human)
    return EXIT_READY if summary.not_ready_hosts == 0 else EXIT_NOT_READY


def _demo(args: argparse.Namespace, outputs: contextlib.ExitStack) -> int:
    from preflight.output_files import OutputError, check_writable, write_atomically
    from preflight.progress import progress_for
    from preflight.render import html as html_report
    from preflight.render import json as json_report

    folder = Path() if args.out is None else args.out
    if args.out is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"demo --out {folder}: cannot create the folder: {exc.strerror or exc}") from None
    json_path, html_path = folder / "demo-report.json", folder / "demo-report.html"
    try:
        for path in (json_path, html_path):
            check_writable("demo --out", path)
    except OutputError as exc:
        if args.out is not None:
            raise UsageError(str(exc)) from None
        # Name --out only as the way out: a user who typed `preflight demo` never wrote it.
        raise UsageError(
            f"demo: cannot write its reports in this folder ({Path.cwd()}): {exc.reason}; "
            "run it in a folder you can write to, or give --out DIR"
        ) from None
    from preflight.demo import run_demo  # the demo servers load only for the demo

    print("preflight demo: an SSH server and an HTTPS Web GUI on loopback, and two demo hosts to check")
    with progress_for(sys.stdout, 2, quiet=False) as progress:
        report = run_demo(progress.host_done)
    progress.finish(report.summary)
    write_atomically(json_path, json_report.render(report))
    write_atomically(html_path, html_report.render(report))
    print(f"HTML report: {html_path.resolve()}")
    print(f"JSON report: {json_path.resolve()}")
    return EXIT_READY


def _render_saved(args: argparse.Namespace, outputs: contextlib.ExitStack) -> int:
    from preflight.output_files import write_atomically
    from preflight.render import html as html_report
    from preflight.render import json as json_report
    from preflight.render import junit as junit_report

    if args.html is None and args.junit is None:
        raise UsageError("render: say what to write: --html PATH, --junit PATH, or both")
    _prepare_outputs([("the report", args.report)], [("--html", args.html), ("--junit", args.junit)])
    document = json_report.load_document(args.report)
    if args.html is not None:
        write_atomically(args.html, html_report.render_document(document))
        print(f"HTML report: {args.html}")
    if args.junit is not None:
        write_atomically(args.junit, junit_report.render_document(document))
        print(f"JUnit XML: {args.junit}")
    return EXIT_READY


def _verify(args: argparse.Namespace) -> int:
    from preflight import signing

    signature_path = args.signature or Path(f"{args.report}.sig")
    key_path = args.key or signing.public_key_path(signing.default_signing_key_path())
    if args.key is None and not key_path.exists():
        raise UsageError(f"verify: say which key to trust with --key PUBKEY (there is no default key at {key_path})")
    data = _read_input(args.report)
    signature = _read_input(signature_path)
    try:
        trusted = signing.load_public_key(key_path)
    except signing.SigningError as exc:
        raise UsageError(str(exc)) from None
    try:
        signing.verify(data, signature, trusted)
    except signing.SignatureError as exc:
        print(f"{args.report}: INVALID: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    print(f"{args.report}: valid signature by {signing.fingerprint(trusted)}")
    return EXIT_READY


def _read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _json_signer(args: argparse.Namespace, outputs: contextlib.ExitStack) -> Callable[[bytes], None]:
    from preflight import signing
    from preflight.output_files import write_atomically

    if args.json in (None, "-"):
        raise UsageError("--sign needs --json PATH: the signature is over the bytes of that file")
    try:
        key = signing.load_or_create_signing_key(args.sign)
    except signing.SigningError as exc:
        raise UsageError(f"--sign {exc}") from None
    signature_path = Path(f"{args.json}.sig")
    # Checked now by _prepare_outputs, written whole at the end, like the reports.

    def sign_json(digest: bytes) -> None:
        # The digest of the bytes written to the JSON file as it was streamed: the bytes on disk.
        write_atomically(signature_path, signing.sign_digest(digest, key))
        if not args.quiet:
            print(f"Signature: {signature_path}")

    return sign_json


def _prepare_outputs(inputs: Sequence[tuple[str, Path | None]], outputs: Sequence[tuple[str, Path | None]]) -> None:
    """Refuse, before anything runs, an output that would overwrite an input or another output, or cannot be written."""
    from preflight.output_files import OutputError, check_writable, refuse_collisions

    given = [(option, path) for option, path in outputs if path is not None]
    try:
        refuse_collisions([(label, path) for label, path in inputs if path is not None], given)
        for option, path in given:
            check_writable(option, path)
    except OutputError as exc:
        raise UsageError(str(exc)) from None


def _check_known_hosts(path: Path) -> None:
    from preflight import known_hosts

    try:
        known_hosts.make_usable(path)
    except OSError as exc:
        raise UsageError(f"--known-hosts {path}: cannot write: {exc.strerror}") from None


def _select_hosts(inventory: Inventory, names: Sequence[str]) -> Inventory:
    if not names:
        return inventory
    known = {host.name for host in inventory.hosts}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(
            f"--host {unknown[0]}: no such host in {inventory.path.name}; known: {', '.join(sorted(known))}"
        )
    return replace(inventory, hosts=tuple(host for host in inventory.hosts if host.name in names))


def _check_remotely(args: argparse.Namespace, inventory: Inventory, human: TextIO, json_path: Path | None) -> int:
    """Hand the inventory to a preflight service and wait for its signed report; the terminal shows the same.

    The report is downloaded to an anonymous spool file and read from it one host at a time, for the terminal and
    for each report written; the JSON report is the service's bytes exactly, so its signature still verifies.
    """
    import shutil
    import tempfile

    from preflight import vantages
    from preflight.output_files import AtomicFile, write_atomically
    from preflight.progress import progress_for
    from preflight.remote import DownloadedReport, RemoteError, check_remote, host_from_document, summary_from_fields
    from preflight.render import html as html_report
    from preflight.render import junit as junit_report
    from preflight.render import terminal

    spool_folder = next((path.parent for path in (json_path, args.html, args.junit) if path is not None), None)
    with tempfile.TemporaryFile(dir=spool_folder) as spool:
        with progress_for(human, len(inventory.hosts), args.quiet) as progress:
            signature = check_remote(
                args.remote,
                args.token,
                args.ticket or inventory.path.name,
                inventory,
                deadline_seconds=max(600.0, args.timeout * 10 * len(inventory.hosts)),
                only=args.only,
                vantages=args.vantage,
                into=spool,
            )
            report = DownloadedReport(spool)
            try:
                multi = vantages.is_multi({"schema_version": report.schema_version()})
                if not multi:
                    hosts = ready = 0
                    for host in report.hosts():
                        hosts, ready = hosts + 1, ready + bool(host["ready"])
                        if not args.quiet:  # --quiet shows no host: 0.15 s of 10,000 hosts not made for nothing
                            progress.host_done(host_from_document(host))
                    progress.finish(summary_from_fields(report.fields, hosts, ready))
            except (ValueError, KeyError, TypeError) as exc:
                raise RemoteError(f"the service's report cannot be read: {type(exc).__name__}: {exc}") from None
        try:
            if multi and not args.quiet:
                for line in terminal.streamed_document_lines(report.hosts, report.read_fields):
                    print(line, file=human)
            elif multi:
                print(terminal.document_summary_line(report.read_fields()), file=human)
            fields = report.read_fields()
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteError(f"the service's report cannot be read: {type(exc).__name__}: {exc}") from None
        if args.json == "-":
            spool.seek(0)
            sys.stdout.flush()
            shutil.copyfileobj(spool, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        if json_path is not None:
            with AtomicFile(json_path) as out:
                spool.seek(0)
                while chunk := spool.read(1 << 20):
                    out.write(chunk)
            if not args.quiet:
                print(f"JSON report: {args.json}", file=human)
            write_atomically(Path(f"{json_path}.sig"), signature)
            if not args.quiet:
                print(f"Signature: {json_path}.sig (preflight verify {json_path} --key SERVICE.pub)", file=human)
        for path, generate, shown in (
            (args.html, html_report.generate, "HTML report"),
            (args.junit, junit_report.generate, "JUnit XML"),
        ):
            if path is not None:
                with AtomicFile(path) as out:
                    for piece in generate(fields, report.hosts):
                        out.write(piece)
                if not args.quiet:
                    print(f"{shown}: {path}", file=human)
    # From several vantages, a host counts as ready only when it is ready from every one.
    return EXIT_READY if fields["summary"]["not_ready"] == 0 else EXIT_NOT_READY


def _refuse_remote_misuse(args: argparse.Namespace) -> None:
    """Options a remote check cannot honour, refused before anything is sent."""
    if args.sign is not None:
        raise UsageError("--sign: a remote check comes back signed by the service; use one or the other")
    if not args.token:
        raise UsageError("--remote needs the service's API token: --token TOKEN or PREFLIGHT_TOKEN")
