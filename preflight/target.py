"""What one check is aimed at: a host, maybe a port, and what the runner learned before it ran."""

from __future__ import annotations

from dataclasses import dataclass

from preflight.inventory import Host
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

    @property
    def purpose(self) -> str:
        required = self.profile.port(self.port) if self.port is not None else None
        return required.purpose if required else ""

    @property
    def kind(self) -> str:
        return self.check_id.split("/", 1)[0]
