"""What support reads off a TLS certificate: names, validity, self-signed, and the openssl-style fingerprint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def certificate_evidence(der: bytes, now: datetime) -> dict[str, Any]:
    """The certificate as support reads it; the fingerprint as `openssl x509 -noout -fingerprint -sha256` prints it."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return {"error": f"unreadable certificate: {exc}"}
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    dns_names, ip_addresses = _subject_alt_names(certificate)
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "san_dns": dns_names,
        "san_ip": ip_addresses,
        "not_before": not_before.strftime(TIME_FORMAT),
        "not_after": not_after.strftime(TIME_FORMAT),
        # Whole days, toward zero: -30 reads "expired 30 days ago" however many hours past that it is.
        "days_left": int((not_after - now).total_seconds() / 86400),
        "expired": now > not_after,
        "not_yet_valid": now < not_before,
        "self_signed": _self_signed(certificate),
        "fingerprint_sha256": ":".join(f"{byte:02X}" for byte in certificate.fingerprint(hashes.SHA256())),
    }


def _subject_alt_names(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return [], []
    return list(names.get_values_for_type(x509.DNSName)), [
        str(address) for address in names.get_values_for_type(x509.IPAddress)
    ]


def _self_signed(certificate: x509.Certificate) -> bool:
    """Issued by its own key: the issuer is the subject and the certificate's own public key verifies it."""
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, InvalidSignature):
        return False
    except TypeError:
        return certificate.issuer == certificate.subject
    return True
