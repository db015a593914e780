"""The service's command-line verbs: `serve`, `users add`, `tokens add`. Argument parsing only imports the
standard library; the service's libraries load when one of these commands runs."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
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
    if args.command == "serve":
        return _serve(args)
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
        workers=args.workers,
        timeout=args.timeout,
        tcp_method=args.tcp_method,
        trusted_proxies=tuple(args.trusted_proxy),
        insecure_cookies=args.insecure_cookies,
    )
    from preflight.service import logs

    logs.configure(getattr(logging, args.log_level.upper()))
    import uvicorn

    from preflight.service.app import create_app
    from preflight.service.core import Service
    from preflight.service.sealing import SealingError
    from preflight.signing import SigningError

    try:
        service = Service.open(config)
    except (SealingError, SigningError, OSError) as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a database that cannot be reached or migrated
        raise CommandError(f"--db: cannot open the database {_shown_url(config.database_url)}: "
                           f"{type(exc).__name__}: {exc}") from None
    server = uvicorn.Server(
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
