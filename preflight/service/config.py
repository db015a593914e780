"""Everything the operator chooses when starting `preflight serve`, with the defaults a support team wants."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from preflight.service.policy import Limits, Network


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/preflight, else ~/.local/state/preflight: the database and keys live here by default."""
    environ = os.environ if environ is None else environ
    state_home = environ.get("XDG_STATE_HOME", "")
    base = Path(state_home) if state_home.startswith("/") else Path.home() / ".local" / "state"
    return base / "preflight"


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    db_url: str = ""
    state: Path = field(default_factory=state_dir)
    signing_key: Path | None = None
    allow_targets: tuple[Network, ...] = ()
    egress_address: str = ""
    limits: Limits = field(default_factory=Limits)
    max_hosts: int = 20
    max_body: int = 64 * 1024
    # For requests with a valid API token: a support desk's inventory of thousands of hosts.
    max_body_token: int = 16 * 1024 * 1024
    workers: int = 4
    timeout: float = 10.0
    tcp_method: str = "auto"
    # Behind a TLS proxy on the same machine: trust its X-Forwarded-For/-Proto from these addresses only.
    trusted_proxies: tuple[str, ...] = ()
    # With a queue (redis://...), checks run on `preflight worker` processes, one queue per vantage.
    queue_url: str = ""
    batch_size: int = 200
    visibility_timeout: int = 300
    # Cookies are Secure by default; only a service reached over plain HTTP beyond loopback needs this off.
    insecure_cookies: bool = False

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.state / 'service.db'}"

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key or self.state / "signing_key"

    @property
    def service_key_path(self) -> Path:
        return self.state / "service.key"

    @property
    def queue_key_path(self) -> Path:
        """The key that seals batches on the queue: copy it to every worker (never the database's key)."""
        return self.state / "queue.key"

    @property
    def known_hosts_path(self) -> Path:
        return self.state / "service_known_hosts"
