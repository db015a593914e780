"""Turns what a client hands the service (a JSON inventory, or the intake form) into a checked submission.

The inventory goes through the CLI's own loader, so a posted inventory is exactly as valid as a file would be
and its errors read the same. On top of that the service refuses what only it must: key files (they would name
files on the service's disk), more hosts than it takes, and targets outside its policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from preflight.inventory import Inventory, inventory_from, load_inventory
from preflight.located_yaml import ConfigError, LocatedDocument, format_loc
from preflight.profiles import Profile
from preflight.service.policy import Refused, TargetPolicy, other_spelling

INVENTORY_NAME = "inventory"
FILE_KEYS = ("key_file", "key_passphrase", "certificate_file")
MAX_TEXT = 200
_LOCATION = re.compile(r"^[^:\n]*:\d+: ")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


class IntakeError(Exception):
    """Why a submission is refused: one line, and the field it is about (an inventory path or a form field)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


@dataclass(frozen=True, slots=True)
class Submission:
    """A valid inventory, its text to seal (secrets included), and the addresses pinned for each host."""

    inventory: Inventory
    text: str
    targets: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def product(self) -> str:
        products = sorted({host.product for host in self.inventory.hosts})
        return ",".join(products)


def sealed_text(document: Mapping[str, Any]) -> str:
    """The text the service seals and hands its jobs: compact JSON of the posted document, every `$` doubled.

    JSON, not YAML: it is read back by the C decoder with no line to track (a tenth of a second for 10,000 hosts,
    not two seconds), since any error in it was reported when it was posted."""
    return json.dumps(_literal(dict(document)), ensure_ascii=False, separators=(",", ":"))


def sealed_document(text: str) -> Any:
    """A sealed text's document: JSON (`sealed_text`), or the YAML that checks stored before it were sealed as."""
    if text.startswith("{"):
        return _port_keys(json.loads(text))
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


def load_sealed_text(text: str, profiles: Mapping[str, Profile]) -> Inventory:
    """The inventory again from its sealed text, inside the job (no environment: the service expands nothing)."""
    path = Path(INVENTORY_NAME)
    if text.startswith("{"):
        return inventory_from(LocatedDocument(path, sealed_document(text), {}), profiles, environ={})
    return load_inventory(path, profiles, environ={}, text=text)


def from_document(
    document: Any, profiles: Mapping[str, Profile], policy: TargetPolicy, max_hosts: int
) -> Submission:
    """A posted inventory (the YAML inventory's shape, secrets inline), validated and judged by the policy."""
    if not isinstance(document, dict):
        raise IntakeError("must be an object with a 'hosts' list", "inventory")
    hosts = document.get("hosts")
    hosts = list(hosts) if isinstance(hosts, list) else hosts
    if isinstance(hosts, list) and len(hosts) > max_hosts:
        raise IntakeError(f"{len(hosts)} hosts; this service takes at most {max_hosts} in one check", "hosts")
    _refuse_file_keys(document, ())
    if isinstance(hosts, list):
        for index, host in enumerate(hosts):
            address = host.get("address") if isinstance(host, dict) else None
            spelled = other_spelling(address) if isinstance(address, str) else None
            if spelled is not None:
                raise IntakeError(
                    f"{address} is another way of writing the IPv4 address {spelled}; write it as {spelled}",
                    f"hosts[{index}].address",
                )
    text = sealed_text(document)
    try:
        inventory = load_sealed_text(text, profiles)
    except ConfigError as exc:
        first = _LOCATION.sub("", str(exc).splitlines()[0] if str(exc) else "invalid inventory")
        path, _, reason = first.partition(": ")
        raise IntakeError(reason, path) if reason else IntakeError(first) from None
    targets = []
    for index, host in enumerate(inventory.hosts):
        try:
            targets.append((host.name, policy.addresses_for(host.address)))
        except Refused as exc:
            raise IntakeError(str(exc), f"hosts[{index}].address") from None
    # A range the operator allowed is one support reaches (a lab, a VPN): public-ip does not fail a host there.
    # Hosts that already say so are left as they are: when none is left, the inventory is not validated twice.
    inside = [
        index
        for index, (_, addresses) in enumerate(targets)
        if inventory.hosts[index].require_public_ip and all(map(policy.in_allowed_range, addresses))
    ]
    if inside and isinstance(hosts, list):
        for index in inside:
            hosts[index] = {**hosts[index], "require_public_ip": False}
        text = sealed_text({**document, "hosts": hosts})
        inventory = load_sealed_text(text, profiles)
    return Submission(inventory, text, tuple(targets))


# The intake form's fields, and the inventory path each one fills (so a loader error lands beside its field).
FORM_FIELDS = {
    "product": ("product",),
    "address": ("address",),
    "gui_username": ("gui", "username"),
    "gui_password": ("gui", "password"),
    "root_password": ("ssh", "root_password"),
    "root_password_2222": ("ssh", "per_port", 2222, "root_password"),
}
SECRET_FIELDS = frozenset({"gui_password", "root_password", "root_password_2222"})


def from_form(
    fields: Mapping[str, str], profiles: Mapping[str, Profile], policy: TargetPolicy
) -> tuple[Submission, str, str]:
    """The intake form as a one-host inventory; returns it with the ticket and the contact e-mail.

    Raises FormErrors with a message per field, so the form can show each one beside its field.
    """
    errors: dict[str, str] = {}
    ticket = fields.get("ticket", "").strip()
    contact = fields.get("contact", "").strip()
    product = fields.get("product", "").strip()
    address = fields.get("address", "").strip()
    if not ticket:
        errors["ticket"] = "Enter the ticket reference support gave you (for example T-1234)."
    elif len(ticket) > MAX_TEXT:
        errors["ticket"] = f"At most {MAX_TEXT} characters."
    if contact and (len(contact) > 320 or not _EMAIL.match(contact)):
        errors["contact"] = "Enter an e-mail address such as admin@example.com, or leave it empty."
    if product not in profiles:
        errors["product"] = "Choose PBXware or SERVERware."
    if not address:
        errors["address"] = "Enter the public IP address or DNS name support connects to."
    required = {"gui_username": "the Web GUI username", "gui_password": "the Web GUI password",
                "root_password": "the root password"}
    for name, what in required.items():
        if not fields.get(name, "").strip():
            errors[name] = f"Enter {what}."
    if errors:
        raise FormErrors(errors)
    host: dict[str, Any] = {
        "name": address,
        "product": product,
        "address": address,
        "gui": {"username": fields["gui_username"].strip(), "password": fields["gui_password"]},
        "ssh": {"root_password": fields["root_password"]},
    }
    second = fields.get("root_password_2222", "")
    if second and product == "serverware":
        host["ssh"]["per_port"] = {2222: {"root_password": second}}
    try:
        submission = from_document({"hosts": [host]}, profiles, policy, max_hosts=1)
    except IntakeError as exc:
        raise FormErrors({_form_field(exc.field): exc.reason}) from None
    return submission, ticket, contact


class FormErrors(Exception):
    """The intake form's errors, by field name."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = dict(errors)


def _form_field(path: str) -> str:
    """The form field an inventory path came from: the longest field path that `path` starts with."""
    best, length = "address", 0
    for name, loc in FORM_FIELDS.items():
        for depth in range(len(loc), 0, -1):
            prefix = f"hosts[0].{format_loc(loc[:depth])}"
            if (path == prefix or path.startswith(prefix + ".")) and len(prefix) > length:
                best, length = name, len(prefix)
    return best


def _refuse_file_keys(value: Any, loc: tuple[str | int, ...]) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            if key in FILE_KEYS:
                raise IntakeError(
                    "this service takes passwords only; a key file stays on your machine (use preflight check there)",
                    format_loc((*loc, key)),
                )
            _refuse_file_keys(child, (*loc, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _refuse_file_keys(child, (*loc, index))


def _port_keys(value: Any, key: object = None) -> Any:
    """JSON object keys are strings: a per_port key "2222" means the port 2222, as it does unquoted in YAML."""
    if isinstance(value, dict):
        return {
            (int(name) if key == "per_port" and isinstance(name, str) and name.isdigit() and len(name) <= 5 else name):
            _port_keys(child, name)
            for name, child in value.items()
        }
    if isinstance(value, list):
        return [_port_keys(child) for child in value]
    return value


def _literal(value: Any) -> Any:
    """Every `$` doubled: the service expands no ${VAR}, so a password is taken exactly as it was sent."""
    if isinstance(value, dict):
        return {key: _literal(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_literal(child) for child in value]
    if isinstance(value, str):
        return value.replace("$", "$$")
    return value
