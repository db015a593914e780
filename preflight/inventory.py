"""The YAML host inventory, validated into Host models with secrets resolved from the environment."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import stat
import urllib.parse
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

from preflight.located_yaml import (
    ConfigError,
    Loc,
    LocatedDocument,
    format_loc,
    load_located,
    raise_all,
    validation_errors,
)
from preflight.profiles import Profile
from preflight.redaction import MIN_MASKED_LENGTH

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
    # An OpenSSH user certificate for key_file's key (ssh-keygen -s ... key.pub makes key-cert.pub).
    certificate_file: Path | None = None

    @field_validator("key_file")
    @classmethod
    def _key_file_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info, "key file")

    @field_validator("certificate_file")
    @classmethod
    def _certificate_file_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("key_file", "") is None:
            raise ValueError("needs key_file: the certificate is offered with its private key")
        return _existing_file(value, info, "certificate file")

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
                root_password=self.root_password,
                key_file=self.key_file,
                key_passphrase=self.key_passphrase,
                certificate_file=self.certificate_file,
            )
        return override


class GuiSettings(BaseModel):
    """The Web GUI login, and whether it may fall back to plain HTTP, which sends the password in clear."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str | None = None
    password: SecretStr | None = None
    # Strict: an opt-in to send a password in clear must be a real YAML boolean, never a string such as "no".
    allow_plain_http: StrictBool = False


class SetupWizardSettings(BaseModel):
    """The Setup Wizard's login, where it differs from root and the root password, and its plain-HTTP opt-in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(default="root", min_length=1)
    # None: ssh.root_password (the host's, never a per-port override).
    password: SecretStr | None = None
    # Strict, as gui.allow_plain_http: sending the root password in clear needs a real YAML true.
    allow_plain_http: StrictBool = False


def _existing_file(value: Path | None, info: ValidationInfo, what: str) -> Path | None:
    """`value` resolved against the inventory's folder; an error unless it names a file."""
    if value is None:
        return None
    base = info.context["inventory_dir"] if info.context else Path.cwd()
    path = (base / value.expanduser()).resolve()
    if not path.is_file():
        raise ValueError(f"no such {what}: {path}")
    return path


class Host(BaseModel):
    """One PBXware or SERVERware system that support must be able to reach."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    product: str
    address: str
    # Factories, not shared instances: pydantic deep-copies a model default for every host (5x the cost of a new one).
    gui: GuiSettings = Field(default_factory=GuiSettings)
    ssh: SshSettings = Field(default_factory=SshSettings)
    setup_wizard: SetupWizardSettings = Field(default_factory=SetupWizardSettings)
    require_public_ip: bool = True
    # Optional add-ons to the product's profile, by name: `voip` adds checks/pbxware-voip.yaml.
    profiles: tuple[str, ...] = ()

    @field_validator("product")
    @classmethod
    def _known_product(cls, value: str, info: ValidationInfo) -> str:
        products = sorted(info.context["profiles"]) if info.context else []
        if value not in products:
            raise ValueError(f"must be one of: {', '.join(products)} (got {value!r})")
        return value

    @field_validator("address", mode="before")
    @classmethod
    def _address_as_written(cls, value: Any) -> Any:
        # Brackets make YAML read a list, and a URL or host:port is what a browser wants: name the fix.
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            raise ValueError(f"[{value[0]}] is a YAML list; write the address without brackets: {value[0]}")
        if isinstance(value, str):
            _refuse_address_with_extras(value)
        return value

    @field_validator("address")
    @classmethod
    def _address_or_dns_name(cls, value: str) -> str:
        if not is_address_or_dns_name(value):
            raise ValueError("must be an IPv4 or IPv6 address or a DNS name")
        return value

    def secrets(self) -> tuple[str, ...]:
        """Every secret this host carries, so outputs can be proved free of them."""
        values = [self.gui.password, self.ssh.root_password, self.ssh.key_passphrase, self.setup_wizard.password]
        for override in self.ssh.per_port.values():
            values += [override.root_password, override.key_passphrase]
        return tuple(value.get_secret_value() for value in values if value is not None and value.get_secret_value())


def _refuse_address_with_extras(value: str) -> None:
    """Raise with the fix for an address written as a URL, in brackets, or with a port."""
    text = value.strip()
    if "://" in text:
        host = urllib.parse.urlsplit(text).hostname
        fix = f"write only the host name: {host}" if host else "write only the host name"
        raise ValueError(f"{text} is a URL; {fix}")
    if text.startswith("[") and "]" in text:
        raise ValueError(f"write the address without brackets: {text[1 : text.index(']')]}")
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit() and host and ":" not in host:
        raise ValueError(f"{text} names a port; write only the host name: {host} (the profile sets the ports)")


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
    # Located lines about mistakes that may be intended ($NAME without braces, a short password); never a secret.
    warnings: tuple[str, ...] = ()

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
        known[(section, "setup_wizard")] = tuple(SetupWizardSettings.model_fields)
        known[(section, "ssh", "per_port")] = credential_keys
    return known


KNOWN_KEYS = _known_keys()


def load_inventory(
    path: Path, profiles: Mapping[str, Profile], environ: Mapping[str, str] | None = None, text: str | None = None
) -> Inventory:
    """Read, merge defaults into, expand and validate an inventory; raise ConfigErrors naming every problem found.

    With `text`, that is the inventory and `path` only names it in errors (the service's posted inventories).
    A file that cannot be read as a mapping with a list of hosts stops at that one error.
    """
    return inventory_from(load_located(path, text), profiles, environ)


def inventory_from(
    document: LocatedDocument, profiles: Mapping[str, Profile], environ: Mapping[str, str] | None = None
) -> Inventory:
    """`load_inventory` of a document already parsed: a file's, or a plain value with no lines (`lines` empty), whose
    errors then name only paths (the service's sealed inventories, which it wrote itself)."""
    path = document.path
    environ = os.environ if environ is None else environ
    top = document.value
    if top is None:
        raise ConfigError(f"{path.name}:1: top level: the file is empty; it needs a 'hosts' list")
    if not isinstance(top, dict):
        raise document.error((), f"must be a mapping with a 'hosts' list, not {_yaml_kind(top)}")
    findings = _Findings(document)
    for key in top:
        if key not in TOP_LEVEL_KEYS:
            findings.error((key,), f"unknown key; expected one of: {', '.join(TOP_LEVEL_KEYS)}")
    defaults = top.get("defaults")
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict):
        findings.error(("defaults",), f"must be a mapping, not {_yaml_kind(defaults)}")
        defaults = {}
    for key in NOT_DEFAULTABLE:
        if key in defaults:
            findings.error(("defaults", key), "cannot be a default; every host sets its own")
    defaults = {key: value for key, value in defaults.items() if key not in NOT_DEFAULTABLE}
    raw_hosts = top.get("hosts")
    if "hosts" not in top:
        # A misspelt `hosts` is already named as an unknown key.
        if not findings.errors:
            findings.error(("hosts",), "is required")
    elif not isinstance(raw_hosts, list):
        findings.error(("hosts",), f"must be a list, not {_yaml_kind(raw_hosts)}")
    elif not raw_hosts:
        findings.error(("hosts",), "must list at least one host")
    if not isinstance(raw_hosts, list):
        raw_hosts = []

    context = {"profiles": profiles, "inventory_dir": path.parent.resolve()}
    hosts: list[Host] = []
    first_line_of_name: dict[str, int] = {}
    for index, raw in enumerate(raw_hosts):
        host_loc: Loc = ("hosts", index)
        if not isinstance(raw, dict):
            findings.error(host_loc, f"must be a mapping, not {_yaml_kind(raw)}")
            continue
        merged, origin = _merge_defaults(defaults, raw, host_loc)
        name = raw.get("name")
        label = name if isinstance(name, str) else format_loc(host_loc)
        locate = _locator(origin)
        reported: set[Loc] = set()
        expanded = _expand_env(merged, (), locate, findings, reported, environ, label)
        _check_secrets(merged, expanded, (), locate, findings, reported, environ, label)
        try:
            host = Host.model_validate(expanded, context=context)
        except ValidationError as exc:
            for loc, message in validation_errors(exc, locate, KNOWN_KEYS):
                if not any(loc[: len(done)] == done for done in reported):
                    findings.error(loc, message)
            continue
        if reported:
            continue
        _check_against_profile(host, profiles[host.product], findings, locate)
        name_line = document.line_of(locate(("name",)))
        if host.name in first_line_of_name:
            first = first_line_of_name[host.name]
            first_use = f"on line {first}" if document.lines else f"by hosts[{first}]"
            findings.error(locate(("name",)), f"duplicate host name {host.name!r} (first used {first_use})")
        else:
            first_line_of_name[host.name] = name_line if document.lines else index
        hosts.append(host)
    raise_all(path.name, findings.errors)
    return Inventory(
        path=path,
        hosts=tuple(hosts),
        plaintext_secret_lines=_plaintext_secret_lines(document),
        sha256=_digest_without_secrets(document.value),
        warnings=tuple(text for _, text in sorted(set(findings.warnings))),
    )


class _Findings:
    """The errors and warnings found so far, each a located line; the same line from shared defaults counts once."""

    def __init__(self, document: LocatedDocument) -> None:
        self.document = document
        self.errors: list[tuple[int, str]] = []
        self.warnings: list[tuple[int, str]] = []

    def error(self, loc: Loc, message: str) -> None:
        self.errors.append(self.document.problem(loc, message))

    def warning(self, loc: Loc, message: str) -> None:
        self.warnings.append(self.document.problem(loc, message))


# The length below which -v logs cannot mask a password without mangling ordinary text: a warning, never an error.
MIN_PASSWORD_LENGTH = MIN_MASKED_LENGTH
_ONE_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_BARE_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_ENV_STYLE_NAME = re.compile(r"^[A-Z][A-Z0-9]*_[A-Z0-9_]+$")


def _check_secrets(
    raw: Any,
    expanded: Any,
    rel: Loc,
    locate: Any,
    findings: _Findings,
    reported: set[Loc],
    environ: Mapping[str, str],
    host: str,
) -> None:
    """Errors for secrets that would otherwise be read wrong without a word: cut at ` #`, empty, not text."""
    if not isinstance(raw, dict) or not isinstance(expanded, dict):
        return
    for key, value in raw.items():
        child = (*rel, key)
        if key not in SECRET_KEYS:
            _check_secrets(value, expanded.get(key), child, locate, findings, reported, environ, host)
            continue
        loc = locate(child)
        if any(loc[: len(done)] == done for done in reported):
            continue
        problem = _secret_problem(key, value, expanded.get(key), loc in findings.document.commented, environ, host)
        if problem is not None:
            findings.error(loc, problem)
            reported.add(loc)
            continue
        # Only text gets this far; the messages name the field and never the value.
        bare = _BARE_REFERENCE.match(value) if isinstance(value, str) else None
        if bare is not None:
            name = bare.group(1)
            # Name the variable only when it reads as one, so a password that merely starts with $ is never shown.
            fix = f"write ${{{name}}}" if name in environ or _ENV_STYLE_NAME.match(name) else "write ${NAME}"
            findings.warning(
                loc,
                f"a $NAME without braces is taken literally, not read from the environment: {fix}, "
                "or $$ for a literal $",
            )
        secret = expanded.get(key)
        if isinstance(secret, str) and len(secret) < MIN_PASSWORD_LENGTH:
            findings.warning(
                loc,
                f"is shorter than {MIN_PASSWORD_LENGTH} characters: easy to guess, and too short for -v logs to "
                "mask it; use a longer one",
            )


def _secret_problem(
    key: str, raw: Any, expanded: Any, cut_by_comment: bool, environ: Mapping[str, str], host: str
) -> str | None:
    quote = f"quote the value: {key}: '...'"
    if cut_by_comment and not (isinstance(raw, str) and _ONE_REFERENCE.match(raw)):
        return f"YAML read the text after ' #' as a comment and cut the value there; {quote}"
    if raw is None or raw == "":
        return f"is empty; write the secret, {quote}, or as ${{ENV_VAR}}, or remove the key"
    if isinstance(raw, bool):
        return f"YAML read the value as true or false (yes, no, on, off are booleans too), not text; {quote}"
    if isinstance(raw, (int, float)):
        return f"YAML read the value as a number, not text; {quote}"
    if not isinstance(raw, str):
        return f"must be text, not {_yaml_kind(raw)}; {quote}"
    if isinstance(expanded, str) and not expanded.strip():
        names = [match.group(1) for match in _ENV_REFERENCE.finditer(raw) if match.group(1)]
        if names:
            variables = ", ".join(names)
            return f"environment variable {variables} is empty or only whitespace (host {host}); set it to the secret"
        return f"is only whitespace; {quote}"
    return None


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


def _check_against_profile(host: Host, profile: Profile, findings: _Findings, locate: Any) -> None:
    for index, name in enumerate(host.profiles):
        if name in host.profiles[:index]:
            findings.error(locate(("profiles", index)), f"{name!r} is listed twice")
        elif profile.addon(name) is None:
            known = ", ".join(addon.addon_name for addon in profile.addons) or "none"
            findings.error(
                locate(("profiles", index)), f"no add-on profile {name!r} for {profile.product} (known: {known})"
            )
    ssh_ports = [required.port for required in profile.ports_for("ssh")]
    for port in host.ssh.per_port:
        if port not in ssh_ports:
            listed = ", ".join(str(number) for number in ssh_ports)
            findings.error(locate(("ssh", "per_port", port)), f"is not an SSH port of {profile.product} ({listed})")


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
    value: Any,
    rel: Loc,
    locate: Any,
    findings: _Findings,
    reported: set[Loc],
    environ: Mapping[str, str],
    host: str,
) -> Any:
    """Replace ${NAME} with the environment's value; `$$` stands for a literal `$`. A bad reference is left as written
    and where it was written added to `reported`, so it is named once."""
    if isinstance(value, dict):
        return {
            key: _expand_env(item, (*rel, key), locate, findings, reported, environ, host)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _expand_env(item, (*rel, index), locate, findings, reported, environ, host)
            for index, item in enumerate(value)
        ]
    if not isinstance(value, str) or "$" not in value:
        return value
    problems: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if name is None:
            problems.append("${ has no closing }; write $$ for a literal $")
        elif not _ENV_NAME.match(name):
            problems.append("a ${...} reference must name an environment variable: letters, digits and _")
        elif name not in environ:
            problems.append(f"environment variable {name} is not set (host {host})")
        else:
            return environ[name]
        return match.group(0)

    expanded = _ENV_REFERENCE.sub(substitute, value)
    if problems:
        findings.error(locate(rel), problems[0])
        reported.add(locate(rel))
        return value
    return expanded


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
