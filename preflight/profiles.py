"""Loads checks/*.yaml: what each product requires, as data."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from preflight.located_yaml import ConfigError, LocatedDocument, first_validation_error, load_located
from preflight.resources import data_dir


class RequiredPort(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(ge=1, le=65535)
    # http-or-https: either answers (the Setup Wizard's port); sip: SIP over UDP and TCP (an add-on's port).
    service: Literal["ssh", "http", "https", "http-or-https", "sip"]
    purpose: str


class LoginPage(BaseModel):
    """How a web login (the Web GUI's, the Setup Wizard's) is found and judged; every field but `port` is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(ge=1, le=65535)
    path: str = Field(default="/", pattern=r"^/")
    username_field: str | None = Field(default=None, min_length=1)
    password_field: str | None = Field(default=None, min_length=1)
    success_marker: str | None = Field(default=None, min_length=1)
    failure_marker: str | None = Field(default=None, min_length=1)
    second_factor_marker: str | None = Field(default=None, min_length=1)


GuiLogin = LoginPage


class PortRange(BaseModel):
    """A range of UDP ports a product needs that no check can prove alone (RTP media)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first: int = Field(ge=1, le=65535)
    last: int = Field(ge=1, le=65535)
    purpose: str

    @field_validator("last")
    @classmethod
    def _not_before_first(cls, last: int, info: ValidationInfo) -> int:
        if last < info.data.get("first", 0):
            raise ValueError("must not be below first")
        return last


class Profile(BaseModel):
    """One product's support requirements."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product: str
    title: str
    ports: tuple[RequiredPort, ...] = Field(min_length=1)
    gui_login: LoginPage | None = None
    setup_wizard_login: LoginPage | None = None
    rtp: PortRange | None = None
    checks: tuple[str, ...] = Field(min_length=1)
    # An add-on profile (`pbxware-voip.yaml`) names its product; a host of that product adds it with
    # `profiles: [voip]`. Its own file never lists add-ons: the loader attaches them to their product.
    addon_of: str | None = None
    addons: tuple[Profile, ...] = ()

    @property
    def addon_name(self) -> str:
        """The name a host uses for this add-on (`voip` for pbxware-voip)."""
        return self.product.removeprefix(f"{self.addon_of}-") if self.addon_of else ""

    def addon(self, name: str) -> Profile | None:
        return next((addon for addon in self.addons if addon.addon_name == name), None)

    @field_validator("ports")
    @classmethod
    def _ports_unique(cls, ports: tuple[RequiredPort, ...]) -> tuple[RequiredPort, ...]:
        numbers = [required.port for required in ports]
        if len(numbers) != len(set(numbers)):
            raise ValueError("each port may be listed once")
        return ports

    def ports_for(self, *services: str) -> tuple[RequiredPort, ...]:
        return tuple(required for required in self.ports if required.service in services)

    def port(self, number: int) -> RequiredPort | None:
        return next((required for required in self.ports if required.port == number), None)


def load_profiles(folder: Path | None = None, known_checks: frozenset[str] | None = None) -> Mapping[str, Profile]:
    """Every profile in `folder` (default: the shipped checks/), keyed by product name."""
    folder = folder or data_dir("checks")
    profiles: dict[str, Profile] = {}
    addons: list[tuple[Profile, LocatedDocument]] = []
    for path in sorted(folder.glob("*.yaml")):
        document = load_located(path)
        if isinstance(document.value, dict) and "addons" in document.value:
            raise document.error(("addons",), "unknown key: add-on profiles name their product with addon_of")
        try:
            profile = Profile.model_validate(document.value)
        except ValidationError as exc:
            raise first_validation_error(document, exc, lambda loc: loc, {}) from None
        if profile.product != path.stem:
            raise document.error(("product",), f"must match the file name ({path.stem})")
        for index, kind in enumerate(profile.checks):
            if known_checks is not None and kind not in known_checks:
                raise document.error(
                    ("checks", index), f"no probe named {kind!r}; known: {', '.join(sorted(known_checks))}"
                )
        if profile.addon_of is None:
            if profile.gui_login is None:
                raise document.error(("gui_login",), "is required in a product's profile")
            profiles[profile.product] = profile
        elif not profile.product.startswith(f"{profile.addon_of}-"):
            raise document.error(("product",), f"an add-on's name must start with its product: {profile.addon_of}-")
        else:
            addons.append((profile, document))
    for addon, document in addons:
        product = profiles.get(addon.addon_of or "")
        if product is None:
            raise document.error(("addon_of",), f"no product profile named {addon.addon_of!r}")
        profiles[product.product] = product.model_copy(update={"addons": (*product.addons, addon)})
    if not profiles:
        raise ConfigError(f"{folder}: no product profiles (*.yaml) found")
    return profiles
