"""What one check is aimed at: a host, maybe a port, and what the runner learned before it ran."""

from __future__ import annotations

from dataclasses import dataclass, field

from preflight.inventory import Host
from preflight.options import RunOptions
from preflight.profiles import Profile


@dataclass(frozen=True, slots=True)
class Target:
    check_id: str
    requirement: str
    host: Host
    profile: Profile
    port: int | None = None
    needs: str | None = None
    ip: str | None = None
    addresses: tuple[str, ...] = ()
    resolution_error: str = ""
    options: RunOptions = field(default_factory=RunOptions)

    @property
    def purpose(self) -> str:
        required = self.profile.port(self.port) if self.port is not None else None
        return required.purpose if required else ""

    def endpoint(self) -> tuple[str, int]:
        """The (ip, port) a port check connects to; the runner never runs one without both."""
        if self.ip is None or self.port is None:
            raise ValueError(f"{self.check_id} has no resolved address or no port")
        return self.ip, self.port

    @property
    def kind(self) -> str:
        return self.check_id.split("/", 1)[0]
