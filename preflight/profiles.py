"""Loads checks/*.yaml: what each product requires, as data."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from preflight.located_yaml import ConfigError, first_validation_error, load_located
from preflight.resources import data_dir


class RequiredPort(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(ge=1, le=65535)
    service: Literal["ssh", "http", "https"]
    purpose: str


class GuiLogin(BaseModel):
    """How the Web GUI login is found and judged; every field but `port` is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(ge=1, le=65535)
    path: str = Field(default="/", pattern=r"^/")
    username_field: str | None = Field(default=None, min_length=1)
    password_field: str | None = Field(default=None, min_length=1)
    success_marker: str | None = Field(default=None, min_length=1)
    failure_marker: str | None = Field(default=None, min_length=1)
    second_factor_marker: str | None = Field(default=None, min_length=1)


class Profile(BaseModel):
    """One product's support requirements."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product: str
    title: str
    ports: tuple[RequiredPort, ...] = Field(min_length=1)
    gui_login: GuiLogin
    checks: tuple[str, ...] = Field(min_length=1)

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
    for path in sorted(folder.glob("*.yaml")):
        document = load_located(path)
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
        profiles[profile.product] = profile
    if not profiles:
        raise ConfigError(f"{folder}: no product profiles (*.yaml) found")
    return profiles
