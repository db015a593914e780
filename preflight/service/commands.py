"""The service's command-line verbs: `serve`, `users add`, `tokens add`. Argument parsing only imports the
standard library; the service's libraries load when one of these commands runs."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

LOG_LEVELS = ("debug", "info", "warning")


class CommandError(Exception):
    """A usage or setup error of a service command: one line, exit 2."""


def add_commands(commands: Any, positive_int: Any, positive_float: Any, methods: tuple[str, ...]) -> None:
    """Register serve, users and tokens on the CLI's subcommand parser."""
    serve = commands.add_parser(
        "serve",
        help="run the support-side web service: customers hand it a host, it checks it from here and signs the report",
    )
    serve.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                       help="where to listen (default %(default)s; put a TLS reverse proxy in front)")
    _add_db(serve)
    serve.add_argument("--allow-targets", default="", metavar="CIDR,...",
                       help="also probe these non-public ranges (a lab, a VPN); by default only public addresses")
    serve.add_argument("--signing-key", type=Path, metavar="PATH",
                       help="Ed25519 key that signs every report (default STATE/signing_key, created on first start)")
    serve.add_argument("--egress-address", default="", metavar="ADDR",
                       help="the public address support's probes leave from, shown to customers to allow-list")
    serve.add_argument("--limit-per-client", type=_limit, default=10, metavar="N",
                       help="checks per hour from one client address (default %(default)s)")
    serve.add_argument("--limit-per-target", type=_limit, default=6, metavar="N",
                       help="checks per hour of one target address (default %(default)s)")
    serve.add_argument("--max-hosts", type=_limit, default=20, metavar="N",
                       help="hosts one posted inventory may hold (default %(default)s)")
    serve.add_argument("--max-body-token", type=_limit, default=16 * 1024, metavar="KIB",
                       help="largest request body from a client with an API token, in KiB (default %(default)s); "
                       "everyone else: 64 KiB")
    serve.add_argument("--workers", type=positive_int, default=4, metavar="N",
                       help="checks run at once (default %(default)s)")
    serve.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                       help="deadline for each check, as for preflight check (default %(default)s)")
    serve.add_argument("--tcp-method", choices=methods, default="auto", help="as for preflight check")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                       help="a reverse proxy whose X-Forwarded-For and -Proto are believed (repeat for more)")
    serve.add_argument("--insecure-cookies", action="store_true",
                       help="session cookies without Secure, for a service reached over plain HTTP (not advised)")
    serve.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    serve.add_argument("--queue", default=os.environ.get("PREFLIGHT_QUEUE", ""), metavar="redis://HOST:6379/0",
                       help="hand checks to `preflight worker` processes through this Redis (Celery) instead of "
                       "running them here; the queue key to copy to workers is STATE/queue.key (default "
                       "$PREFLIGHT_QUEUE, which keeps a Redis password out of ps)")
    serve.add_argument("--batch-size", type=_limit, default=200, metavar="N",
                       help="with --queue: hosts per task, so a large inventory runs on several workers (default "
                       "%(default)s)")
    serve.add_argument("--visibility-timeout", type=_limit, default=300, metavar="SECONDS",
                       help="with --queue: a task unacknowledged this long (its worker died) goes to another worker; "
                       "longer than any batch runs (default %(default)s)")

    worker = commands.add_parser(
        "worker", help="run the checks a preflight service queues, from this machine's network, as one vantage"
    )
    worker.add_argument("--queue", default=os.environ.get("PREFLIGHT_QUEUE", ""), metavar="redis://HOST:6379/0",
                        help="the service's Redis (default $PREFLIGHT_QUEUE, which keeps its password out of ps)")
    worker.add_argument("--vantage", required=True, metavar="NAME",
                        help="this worker's vantage, such as eu or us-east (lower-case letters, digits and -)")
    worker.add_argument("--egress-address", default="", metavar="ADDR",
                        help="the public address this vantage's probes leave from, named in its reports")
    worker.add_argument("--queue-key", type=Path, metavar="PATH",
                        help="the service's queue key (STATE/queue.key on the service; default STATE/queue.key here)")
    worker.add_argument("--allow-targets", default="", metavar="CIDR,...",
                        help="non-public ranges this worker may probe (it judges every address again)")
    worker.add_argument("--concurrency", type=positive_int, default=2, metavar="N",
                        help="batches run at once (default %(default)s)")
    worker.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                        help="deadline for each check (default %(default)s)")
    worker.add_argument("--tcp-method", choices=methods, default="auto", help="as for preflight check")
    worker.add_argument("--visibility-timeout", type=_limit, default=300, metavar="SECONDS",
                        help="as for serve; use the same value")
    worker.add_argument("--max-deliveries", type=positive_int, default=3, metavar="N",
                        help="a batch whose worker was lost N times is reported failed, with the reason "
                        "(default %(default)s)")
    worker.add_argument("--state", type=Path, metavar="DIR",
                        help="folder for the queue key and the known_hosts file (default $XDG_STATE_HOME/preflight)")
    worker.add_argument("--log-level", choices=LOG_LEVELS, default="info")

    users = commands.add_parser("users", help="support engineers' accounts for /support")
    users_verbs = users.add_subparsers(dest="users_command", required=True)
    add_user = users_verbs.add_parser("add", help="create an account (or set its password); the password is prompted")
    add_user.add_argument("name", metavar="NAME")
    _add_db(add_user)

    tokens = commands.add_parser("tokens", help="API tokens for POST /api/v1/checks and check --remote")
    tokens_verbs = tokens.add_subparsers(dest="tokens_command", required=True)
    add_token = tokens_verbs.add_parser("add", help="create a token and print it once (only its hash is kept)")
    add_token.add_argument("name", metavar="NAME")
    _add_db(add_token)


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10000000, not {text!r}")
    return int(text)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default="", metavar="URL",
                        help="database: sqlite:///PATH or postgresql://USER@HOST/DB (default: SQLite in STATE)")
    parser.add_argument("--state", type=Path, metavar="DIR",
                        help="folder for the database and keys (default $XDG_STATE_HOME/preflight, "
                        "else ~/.local/state/preflight)")


def run(args: argparse.Namespace) -> int:
    """Run one of the service's commands; CommandError for what the user must fix."""
    # Everything these write (database, reports, keys) holds credentials or proofs: private to the user.
    os.umask(0o077)
    if args.command == "serve":
        return _serve(args)
    if args.command == "worker":
        return _worker(args)
    if args.command == "users":
        return _add_user(args)
    return _add_token(args)


def _config(args: argparse.Namespace, **extra: Any) -> Any:
    from preflight.service.config import ServiceConfig, state_dir

    state = args.state if args.state is not None else state_dir()
    return ServiceConfig(db_url=args.db, state=state, **extra)


def _store(args: argparse.Namespace) -> Any:
    from preflight.service import schema
    from preflight.service.store import Store, make_engine

    config = _config(args)
    config.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = Store(make_engine(config.database_url))
    try:
        schema.upgrade(store.engine)
    except Exception as exc:  # noqa: BLE001 - any driver's failure to connect is the operator's to fix
        raise CommandError(f"--db: cannot open the database {_shown_url(config.database_url)}: "
                           f"{type(exc).__name__}") from None
    return store


def _add_user(args: argparse.Namespace) -> int:
    from preflight.service import accounts

    password = _read_password(f"password for {args.name}: ")
    if len(password) < 12:
        raise CommandError("the password must be at least 12 characters")
    created = _store(args).add_user(args.name, accounts.hash_password(password))
    print(f"user {args.name} {'created' if created else 'password changed'}")
    return 0


def _read_password(prompt: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("again: ") != first:
            raise CommandError("the two passwords differ")
        return first
    # Piped: the first line of standard input (for provisioning scripts), never an argument in `ps`.
    return sys.stdin.readline().rstrip("\r\n")


def _add_token(args: argparse.Namespace) -> int:
    from preflight.service import accounts

    token = accounts.add_token(_store(args), args.name)
    print(token)
    print(f"token for {args.name}: shown once; only its hash is kept", file=sys.stderr)
    return 0


def parse_listen(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not separator or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise CommandError(f"--listen {text}: must be HOST:PORT, such as 127.0.0.1:8080 or [::1]:8080")
    return host, int(port)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from preflight.service.policy import Limits, parse_networks

    host, port = parse_listen(args.listen)
    try:
        allowed = parse_networks(args.allow_targets)
    except ValueError as exc:
        raise CommandError(f"--allow-targets: {exc}") from None
    for proxy in args.trusted_proxy:
        try:
            ipaddress.ip_address(proxy)
        except ValueError:
            raise CommandError(f"--trusted-proxy {proxy}: must be an IP address") from None
    if args.egress_address:
        try:
            ipaddress.ip_address(args.egress_address)
        except ValueError:
            raise CommandError(f"--egress-address {args.egress_address}: must be an IP address") from None
    config = _config(
        args,
        host=host,
        port=port,
        signing_key=args.signing_key,
        allow_targets=allowed,
        egress_address=args.egress_address,
        limits=Limits(per_client=args.limit_per_client, per_target=args.limit_per_target),
        max_hosts=args.max_hosts,
        max_body_token=args.max_body_token * 1024,
        workers=args.workers,
        timeout=args.timeout,
        tcp_method=args.tcp_method,
        trusted_proxies=tuple(args.trusted_proxy),
        insecure_cookies=args.insecure_cookies,
        queue_url=_queue_url(args.queue),
        batch_size=args.batch_size,
        visibility_timeout=args.visibility_timeout,
    )
    from preflight.service import logs

    logs.configure(getattr(logging, args.log_level.upper()))
    import uvicorn

    from preflight.located_yaml import ConfigError
    from preflight.service.app import create_app
    from preflight.service.core import Service
    from preflight.service.sealing import SealingError
    from preflight.signing import SigningError

    try:
        service = Service.open(config)
    except (SealingError, SigningError, ConfigError, OSError) as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a database that cannot be reached or migrated
        raise CommandError(f"--db: cannot open the database {_shown_url(config.database_url)}: "
                           f"{type(exc).__name__}: {exc}") from None
    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Answers waiting for a change are given now: uvicorn waits for every open request before it stops.
            service.changes.close()
            super().handle_exit(sig, frame)

    server = Server(
        uvicorn.Config(
            create_app(service),
            host=host,
            port=port,
            log_config=None,
            server_header=False,
            proxy_headers=bool(config.trusted_proxies),
            forwarded_allow_ips=list(config.trusted_proxies) or None,
            access_log=True,
        )
    )
    from preflight.service.heap import freeze_startup_objects

    freeze_startup_objects()
    print(f"preflight serve: http://{'[' + host + ']' if ':' in host else host}:{port}/ "
          f"(database {_shown_url(config.database_url)}, signing key {config.signing_key_path})", file=sys.stderr,
          flush=True)
    server.run()
    return 0


def _shown_url(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing rather than leaked
        return "(unparsable URL)"


def _queue_url(url: str) -> str:
    if url and not url.startswith(("redis://", "rediss://")):
        raise CommandError(f"--queue {url}: must be a Redis URL such as redis://127.0.0.1:6379/0")
    return url


WORKER_CHILD = "PREFLIGHT_WORKER_CHILD"
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


def _supervise() -> int:
    """Run the Celery consumer in a child process and start it again whenever it dies of anything but a signal.

    Kombu's Redis transport can end a worker with "Unrecoverable error" when the broker vanishes while a task is
    unacknowledged; the task itself comes back through the visibility timeout, but only to a live worker.
    """
    import signal
    import subprocess
    import time

    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failures = 0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(  # noqa: S603 - this same command again, as the user typed it
            [sys.executable, "-m", "preflight", *sys.argv[1:]],
            env={**os.environ, WORKER_CHILD: "1"},
        )
        code = child.wait()
        if stopping or code == 2:
            return 0 if stopping else code
        failures = 0 if time.monotonic() - started > 300 else failures + 1
        delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
        print(f"preflight worker: the consumer stopped (exit {code}); starting it again in {delay:g} s",
              file=sys.stderr, flush=True)
        time.sleep(delay)


def _worker(args: argparse.Namespace) -> int:
    import logging
    import socket

    from preflight.service.policy import parse_networks

    url = _queue_url(args.queue)
    if not url:
        raise CommandError("worker: give the service's Redis: --queue redis://HOST:6379/0 or PREFLIGHT_QUEUE")
    from preflight.service.queue import VANTAGE_NAME

    if not VANTAGE_NAME.match(args.vantage):
        raise CommandError(f"--vantage {args.vantage}: must be 1-32 lower-case letters, digits and -, such as eu")
    try:
        allowed = parse_networks(args.allow_targets)
    except ValueError as exc:
        raise CommandError(f"--allow-targets: {exc}") from None
    if args.egress_address:
        try:
            ipaddress.ip_address(args.egress_address)
        except ValueError:
            raise CommandError(f"--egress-address {args.egress_address}: must be an IP address") from None
    from preflight.service.config import state_dir

    state = args.state if args.state is not None else state_dir()
    key_path = args.queue_key or state / "queue.key"
    if not key_path.is_file():
        raise CommandError(f"--queue-key {key_path}: no such file; copy queue.key from the service's state folder")
    from preflight.service import logs

    logs.configure(getattr(logging, args.log_level.upper()))
    from preflight.located_yaml import ConfigError
    from preflight.probes import load_every_probe
    from preflight.profiles import load_profiles
    from preflight.service.jobs import ProbeSettings
    from preflight.service.policy import TargetPolicy, own_addresses
    from preflight.service.queue import WorkerSettings, make_app, queue_name, serve_as_worker
    from preflight.service.sealing import Sealer, SealingError, load_or_create_master_key

    try:
        queue_key = load_or_create_master_key(key_path)
        profiles = dict(load_profiles(known_checks=frozenset(load_every_probe())))
    except (SealingError, ConfigError, OSError) as exc:
        raise CommandError(str(exc)) from None
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    serve_as_worker(WorkerSettings(
        probing=ProbeSettings(
            profiles=profiles,
            policy=TargetPolicy(allowed=allowed, own=own_addresses()),
            known_hosts=state / f"worker_known_hosts.{args.vantage}",
            timeout=args.timeout,
            tcp_method=args.tcp_method,
        ),
        sealer=Sealer(queue_key),
        vantage=args.vantage,
        egress_address=args.egress_address,
        max_deliveries=args.max_deliveries,
    ))
    if os.environ.get(WORKER_CHILD) != "1":
        return _supervise()
    app = make_app(url, args.visibility_timeout)
    from celery.signals import worker_ready

    from preflight.service.heap import freeze_startup_objects

    worker_ready.connect(lambda **_: freeze_startup_objects(), weak=False, dispatch_uid="preflight-freeze")
    print(f"preflight worker: vantage {args.vantage}, queue {_shown_redis(url)}", file=sys.stderr, flush=True)
    app.worker_main([
        "worker",
        f"--queues={queue_name(args.vantage)}",
        "--pool=threads",
        f"--concurrency={args.concurrency}",
        f"--hostname={args.vantage}@{socket.gethostname()}.{os.getpid()}",
        "--without-gossip",
        "--without-mingle",
        f"--loglevel={args.log_level.upper()}",
    ])
    return 0


def _shown_redis(url: str) -> str:
    """A Redis URL without its password, for messages and logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
