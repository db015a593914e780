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
        if self.port is None:
            return ""
        # Asked for each check's result and its finding: looked up in the profile once per profile and port.
        key = (id(self.profile), self.port)
        known = _PURPOSES.get(key)
        if known is None:
            required = self.profile.port(self.port)
            known = _PURPOSES[key] = (self.profile, required.purpose if required else "")
        return known[1]

    def with_options(self, options: RunOptions) -> Target:
        """This target under the run's options (as dataclasses.replace, which takes twice as long)."""
        return Target(
            check_id=self.check_id,
            requirement=self.requirement,
            host=self.host,
            profile=self.profile,
            port=self.port,
            needs=self.needs,
            ip=self.ip,
            addresses=self.addresses,
            resolution_error=self.resolution_error,
            options=options,
        )

    def resolved(self, ip: str | None, addresses: tuple[str, ...], resolution_error: str) -> Target:
        """This target with what resolving its host found (as dataclasses.replace, which takes twice as long)."""
        return Target(
            check_id=self.check_id,
            requirement=self.requirement,
            host=self.host,
            profile=self.profile,
            port=self.port,
            needs=self.needs,
            ip=ip,
            addresses=addresses,
            resolution_error=resolution_error,
            options=self.options,
        )

    def endpoint(self) -> tuple[str, int]:
        """The (ip, port) a port check connects to; the runner never runs one without both."""
        if self.ip is None or self.port is None:
            raise ValueError(f"{self.check_id} has no resolved address or no port")
        return self.ip, self.port

    @property
    def kind(self) -> str:
        return self.check_id.split("/", 1)[0]


# (id(profile), port): (profile, purpose). The profile is held, so its id cannot pass to another profile; profiles are
# frozen, and a run has a handful of them.
_PURPOSES: dict[tuple[int, int], tuple[Profile, str]] = {}
