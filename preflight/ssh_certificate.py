"""OpenSSH user certificates: what support reads off one (key ID, principals, validity, CA) and whether it is valid
now. Reading only; paramiko offers the certificate, and the server decides whether it trusts the CA."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import SSHCertificate, SSHCertificateType

from preflight.known_hosts import fingerprint_of

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_FOREVER = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class UserCertificate:
    key_id: str
    principals: tuple[str, ...]  # empty: any principal (sshd still wants a principal it can match)
    valid_after: datetime | None  # None: from the beginning of time
    valid_before: datetime | None  # None: forever
    serial: int
    key_type: str
    ca_fingerprint: str
    public_key_blob: bytes  # the certified key, as the SSH wire format writes it

    def problem_at(self, now: datetime) -> str | None:
        """`expired` or `not-yet-valid` at `now`, as sshd judges it (valid_after <= now < valid_before); else None."""
        if self.valid_before is not None and now >= self.valid_before:
            return "expired"
        if self.valid_after is not None and now < self.valid_after:
            return "not-yet-valid"
        return None

    def evidence(self, now: datetime) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "principals": list(self.principals),
            "valid_after": _time_text(self.valid_after, "always"),
            "valid_before": _time_text(self.valid_before, "forever"),
            "serial": self.serial,
            "type": self.key_type,
            "signed_by": self.ca_fingerprint,
            "valid_now": self.problem_at(now) is None,
        }


def read_user_certificate(path: Path) -> UserCertificate:
    """The user certificate in `path` (an OpenSSH `-cert.pub` file); ValueError if it is not one."""
    certificate = serialization.load_ssh_public_identity(path.read_bytes().strip())
    if not isinstance(certificate, SSHCertificate):
        raise ValueError("a plain public key, not a certificate")
    if certificate.type is not SSHCertificateType.USER:
        raise ValueError("a host certificate, not a user certificate")
    certified = certificate.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    ca = certificate.signature_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return UserCertificate(
        key_id=certificate.key_id.decode(errors="replace"),
        principals=tuple(principal.decode(errors="replace") for principal in certificate.valid_principals),
        valid_after=_time(certificate.valid_after) if certificate.valid_after else None,
        valid_before=_time(certificate.valid_before) if certificate.valid_before != _FOREVER else None,
        serial=certificate.serial,
        key_type=path.read_text().split(maxsplit=1)[0],
        ca_fingerprint=fingerprint_of(base64.b64decode(ca.split()[1])),
        public_key_blob=base64.b64decode(certified.split()[1]),
    )


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(min(seconds, 253402300799), UTC)


def _time_text(moment: datetime | None, unbounded: str) -> str:
    return moment.strftime(TIME_FORMAT) if moment is not None else unbounded
