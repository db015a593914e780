"""The YAML host inventory, validated into Host models with secrets resolved from the environment."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from preflight.located_yaml import ConfigError, Loc, LocatedDocument, first_validation_error, format_loc, load_located
from preflight.profiles import Profile

TOP_LEVEL_KEYS = ("defaults", "hosts")
NOT_DEFAULTABLE = ("name", "address")
_HOST_KEY_PIN = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_ENV_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _unquoted_number(value: object) -> object:
    # A quoted key such as '2020' would become 2020 and lose its place in the file, or silently collide with 2020.
    if isinstance(value, str) and value.isdigit():
        raise ValueError("must be a port number without quotes")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be a port number")
    return value


def _port_number(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be 1-65535")
    return value


PortNumber = Annotated[int, BeforeValidator(_unquoted_number), AfterValidator(_port_number)]


class Credentials(BaseModel):
    """How to log in as root over SSH: a password, or a key file with an optional passphrase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root_password: SecretStr | None = None
    key_file: Path | None = None
    key_passphrase: SecretStr | None = None

    @field_validator("key_file")
    @classmethod
    def _key_file_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = info.context["inventory_dir"] if info.context else Path.cwd()
        path = (base / value.expanduser()).resolve()
        if not path.is_file():
            raise ValueError(f"no such key file: {path}")
        return path

    @property
    def provided(self) -> bool:
        return self.root_password is not None or self.key_file is not None


class SshSettings(Credentials):
    host_key: str | None = None
    per_port: dict[PortNumber, Credentials] = Field(default_factory=dict)

    @field_validator("host_key")
    @classmethod
    def _host_key_is_fingerprint(cls, value: str | None) -> str | None:
        if value is not None and not _HOST_KEY_PIN.match(value):
            raise ValueError("must be an OpenSSH fingerprint: SHA256: then 43 base64 characters (ssh-keygen -lf)")
        return value

    def credentials_for(self, port: int) -> Credentials:
        """The credentials for one SSH port: the per-port override where it has one, else the host's."""
        override = self.per_port.get(port)
        if override is None:
            return Credentials(
                root_password=self.root_password, key_file=self.key_file, key_passphrase=self.key_passphrase
            )
        return override


class GuiSettings(BaseModel):
    """The Web GUI login, and whether it may fall back to plain HTTP, which sends the password in clear."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str | None = None
    password: SecretStr | None = None
    # Strict: an opt-in to send a password in clear must be a real YAML boolean, never a string such as "no".
    allow_plain_http: StrictBool = False


class Host(BaseModel):
    """One PBXware or SERVERware system that support must be able to reach."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    product: str
    address: str
    gui: GuiSettings = GuiSettings()
    ssh: SshSettings = SshSettings()
    require_public_ip: bool = True

    @field_validator("product")
    @classmethod
    def _known_product(cls, value: str, info: ValidationInfo) -> str:
        products = sorted(info.context["profiles"]) if info.context else []
        if value not in products:
            raise ValueError(f"must be one of: {', '.join(products)} (got {value!r})")
        return value

    @field_validator("address")
    @classmethod
    def _address_or_dns_name(cls, value: str) -> str:
        if not is_address_or_dns_name(value):
            raise ValueError("must be an IPv4 or IPv6 address or a DNS name")
        return value

    def secrets(self) -> tuple[str, ...]:
        """Every secret this host carries, so outputs can be proved free of them."""
        values = [self.gui.password, self.ssh.root_password, self.ssh.key_passphrase]
        for override in self.ssh.per_port.values():
            values += [override.root_password, override.key_passphrase]
        return tuple(value.get_secret_value() for value in values if value is not None and value.get_secret_value())


def is_address_or_dns_name(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    # An all-numeric last label is a mistyped IPv4 address (192.0.2.300), never a DNS name (RFC 3696 section 2).
    return 0 < len(name) <= 253 and all(_DNS_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


@dataclass(frozen=True, slots=True)
class Inventory:
    path: Path
    hosts: tuple[Host, ...]
    # Lines that hold a password written out in the file rather than as ${ENV_VAR}.
    plaintext_secret_lines: tuple[int, ...] = ()
    # SHA-256 of the file as parsed, every secret value masked: names the inventory without exposing it.
    sha256: str | None = None

    def exposure_warning(self) -> str | None:
        """ssh refuses a private key that others can read; preflight warns about such an inventory."""
        if not self.plaintext_secret_lines:
            return None
        try:
            mode = self.path.stat().st_mode
        except OSError:
            return None
        if not mode & stat.S_IROTH:
            return None
        lines = ", ".join(str(line) for line in self.plaintext_secret_lines)
        return (
            f"{self.path.name} holds plaintext passwords (line {lines}) and every user of this machine can read it "
            f"(mode {stat.S_IMODE(mode):04o}): run chmod 600 {self.path.name}, or write each password as ${{ENV_VAR}}"
        )


def _known_keys() -> Mapping[Loc, tuple[str, ...]]:
    host_keys = tuple(Host.model_fields)
    defaults_keys = tuple(key for key in host_keys if key not in NOT_DEFAULTABLE)
    ssh_keys, gui_keys = tuple(SshSettings.model_fields), tuple(GuiSettings.model_fields)
    credential_keys = tuple(Credentials.model_fields)
    known: dict[Loc, tuple[str, ...]] = {(): TOP_LEVEL_KEYS, ("hosts",): host_keys, ("defaults",): defaults_keys}
    for section in ("hosts", "defaults"):
        known[(section, "ssh")] = ssh_keys
        known[(section, "gui")] = gui_keys
        known[(section, "ssh", "per_port")] = credential_keys
    return known


KNOWN_KEYS = _known_keys()


def load_inventory(
    path: Path, profiles: Mapping[str, Profile], environ: Mapping[str, str] | None = None, text: str | None = None
) -> Inventory:
    """Read, merge defaults into, expand and validate an inventory; raise ConfigError with one line.

    With `text`, that is the inventory and `path` only names it in errors (the service's posted inventories).
    """
    environ = os.environ if environ is None else environ
    document = load_located(path, text)
    top = document.value
    if top is None:
        raise ConfigError(f"{path.name}:1: top level: the file is empty; it needs a 'hosts' list")
    if not isinstance(top, dict):
        raise document.error((), f"must be a mapping with a 'hosts' list, not {_yaml_kind(top)}")
    for key in top:
        if key not in TOP_LEVEL_KEYS:
            raise document.error((key,), f"unknown key; expected one of: {', '.join(TOP_LEVEL_KEYS)}")
    defaults = top.get("defaults")
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict):
        raise document.error(("defaults",), f"must be a mapping, not {_yaml_kind(defaults)}")
    for key in NOT_DEFAULTABLE:
        if key in defaults:
            raise document.error(("defaults", key), "cannot be a default; every host sets its own")
    if "hosts" not in top:
        raise document.error(("hosts",), "is required")
    raw_hosts = top["hosts"]
    if not isinstance(raw_hosts, list):
        raise document.error(("hosts",), f"must be a list, not {_yaml_kind(raw_hosts)}")
    if not raw_hosts:
        raise document.error(("hosts",), "must list at least one host")

    context = {"profiles": profiles, "inventory_dir": path.parent.resolve()}
    hosts: list[Host] = []
    first_line_of_name: dict[str, int] = {}
    for index, raw in enumerate(raw_hosts):
        host_loc: Loc = ("hosts", index)
        if not isinstance(raw, dict):
            raise document.error(host_loc, f"must be a mapping, not {_yaml_kind(raw)}")
        merged, origin = _merge_defaults(defaults, raw, host_loc)
        name = raw.get("name")
        label = name if isinstance(name, str) else format_loc(host_loc)
        expanded = _expand_env(merged, (), origin, document, environ, label)
        locate = _locator(origin)
        try:
            host = Host.model_validate(expanded, context=context)
        except ValidationError as exc:
            raise first_validation_error(document, exc, locate, KNOWN_KEYS) from None
        _check_against_profile(host, profiles[host.product], document, locate)
        if host.name in first_line_of_name:
            first = first_line_of_name[host.name]
            raise document.error(locate(("name",)), f"duplicate host name {host.name!r} (first used on line {first})")
        first_line_of_name[host.name] = document.line_of(locate(("name",)))
        hosts.append(host)
    return Inventory(
        path=path,
        hosts=tuple(hosts),
        plaintext_secret_lines=_plaintext_secret_lines(document),
        sha256=_digest_without_secrets(document.value),
    )


SECRET_KEYS = frozenset({"password", "root_password", "key_passphrase"})


def _plaintext_secret_lines(document: LocatedDocument) -> tuple[int, ...]:
    lines: list[int] = []

    def walk(value: Any, loc: Loc) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if key in SECRET_KEYS and isinstance(child, str) and child and "${" not in child:
                    lines.append(document.line_of((*loc, key)))
                else:
                    walk(child, (*loc, key))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                walk(child, (*loc, index))

    walk(document.value, ())
    return tuple(sorted(set(lines)))


def _digest_without_secrets(value: Any) -> str:
    def masked(node: Any) -> Any:
        if isinstance(node, dict):
            return {str(key): "<secret>" if key in SECRET_KEYS else masked(child) for key, child in node.items()}
        if isinstance(node, list):
            return [masked(child) for child in node]
        return node

    canonical = json.dumps(masked(value), sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_against_profile(host: Host, profile: Profile, document: LocatedDocument, locate: Any) -> None:
    ssh_ports = [required.port for required in profile.ports_for("ssh")]
    for port in host.ssh.per_port:
        if port not in ssh_ports:
            listed = ", ".join(str(number) for number in ssh_ports)
            loc = locate(("ssh", "per_port", port))
            raise document.error(loc, f"is not an SSH port of {profile.product} ({listed})")


def _merge_defaults(
    defaults: dict[str, Any], host: dict[str, Any], host_loc: Loc
) -> tuple[dict[str, Any], dict[Loc, Loc]]:
    """Overlay a host on the defaults, remembering where each value was written."""
    origin: dict[Loc, Loc] = {}

    def merge(base: Any, over: Any, rel: Loc, base_loc: Loc, over_loc: Loc) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            origin[rel] = over_loc
            result = {}
            for key in {**base, **over}:
                if key in over and key in base:
                    result[key] = merge(base[key], over[key], (*rel, key), (*base_loc, key), (*over_loc, key))
                elif key in over:
                    result[key] = over[key]
                    origin[(*rel, key)] = (*over_loc, key)
                else:
                    result[key] = base[key]
                    origin[(*rel, key)] = (*base_loc, key)
            return result
        origin[rel] = over_loc
        return over

    return merge(defaults, host, (), ("defaults",), host_loc), origin


def _locator(origin: Mapping[Loc, Loc]) -> Any:
    def locate(rel: Loc) -> Loc:
        for end in range(len(rel), -1, -1):
            if rel[:end] in origin:
                return (*origin[rel[:end]], *rel[end:])
        return rel

    return locate


def _expand_env(
    value: Any, rel: Loc, origin: Mapping[Loc, Loc], document: LocatedDocument, environ: Mapping[str, str], host: str
) -> Any:
    """Replace ${NAME} with the environment's value; `$$` stands for a literal `$`."""
    if isinstance(value, dict):
        return {key: _expand_env(item, (*rel, key), origin, document, environ, host) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_env(item, (*rel, index), origin, document, environ, host) for index, item in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        loc = _locator(origin)(rel)
        if name is None:
            raise document.error(loc, "${ has no closing }; write $$ for a literal $")
        if not _ENV_NAME.match(name):
            raise document.error(loc, "a ${...} reference must name an environment variable: letters, digits and _")
        if name not in environ:
            raise document.error(loc, f"environment variable {name} is not set (host {host})")
        return environ[name]

    return _ENV_REFERENCE.sub(substitute, value)


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null" if value is None else type(value).__name__
