"""SSH-signed reports: preflight and OpenSSH's ssh-keygen accept each other's signatures and reject the same changes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from preflight import cli, signing
from tests.requirements import needs_ssh_keygen

SSH_KEYGEN = shutil.which("ssh-keygen")


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey
    key_path: Path
    public_path: Path
    allowed_signers: Path


def _preflight(*args: str, cwd: Path, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "LANG": "C.UTF-8", "XDG_STATE_HOME": str(state or cwd)}
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


def _ssh_keygen(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    assert SSH_KEYGEN is not None
    return subprocess.run([SSH_KEYGEN, *args], input=stdin, capture_output=True, timeout=30)


def _ssh_keygen_verifies(allowed_signers: Path, data: bytes, signature_path: Path) -> bool:
    completed = _ssh_keygen(
        "-Y", "verify", "-f", str(allowed_signers), "-I", "preflight", "-n", signing.NAMESPACE,
        "-s", str(signature_path), stdin=data,
    )  # fmt: skip
    return completed.returncode == 0


def _allowed_signers_line(public_key_line: str) -> str:
    return f'preflight namespaces="{signing.NAMESPACE}" {public_key_line}\n'


def _new_signer(folder: Path) -> Signer:
    key_path = folder / "signing_key"
    key = signing.load_or_create_signing_key(key_path)
    allowed = folder / "allowed_signers"
    allowed.write_text(_allowed_signers_line(signing.public_key_line(key)))
    return Signer(key, key_path, signing.public_key_path(key_path), allowed)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real report: what `preflight demo` wrote after checking its two loopback hosts."""
    folder = tmp_path_factory.mktemp("demo")
    completed = _preflight("demo", "--out", str(folder), cwd=folder)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return (folder / "demo-report.json").read_bytes()


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return _new_signer(tmp_path_factory.mktemp("signer"))


@pytest.fixture
def keygen_key(tmp_path: Path) -> Iterator[Path]:
    """An Ed25519 key made by ssh-keygen itself, not by preflight."""
    path = tmp_path / "id_ed25519"
    completed = _ssh_keygen("-q", "-t", "ed25519", "-N", "", "-C", "support@example", "-f", str(path))
    assert completed.returncode == 0, completed.stderr
    yield path


# ---- the key file -------------------------------------------------------------------------------------------------


def test_new_key_is_0600_in_0700_folders_whatever_the_umask(tmp_path: Path) -> None:
    key_path = tmp_path / "state" / "preflight" / "signing_key"
    old_umask = os.umask(0)
    try:
        key = signing.load_or_create_signing_key(key_path)
    finally:
        os.umask(old_umask)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert (mode(tmp_path / "state"), mode(tmp_path / "state" / "preflight")) == (0o700, 0o700)
    assert mode(key_path) == 0o600
    assert mode(tmp_path / "state" / "preflight" / "signing_key.pub") == 0o644
    assert (tmp_path / "state" / "preflight" / "signing_key.pub").read_text() == signing.public_key_line(key) + "\n"
    assert sorted(path.name for path in key_path.parent.iterdir()) == ["signing_key", "signing_key.pub"]


def test_existing_key_is_loaded_not_replaced(tmp_path: Path) -> None:
    key_path = tmp_path / "signing_key"
    first = signing.load_or_create_signing_key(key_path)
    written = key_path.read_bytes()

    again = signing.load_or_create_signing_key(key_path)

    assert signing.public_key_line(again) == signing.public_key_line(first)
    assert key_path.read_bytes() == written


def test_processes_racing_to_create_the_key_all_end_with_the_key_on_disk(tmp_path: Path) -> None:
    key_path = tmp_path / "race" / "signing_key"
    lines: list[str] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        lines.append(signing.public_key_line(signing.load_or_create_signing_key(key_path)))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(lines) == {signing.public_key_line(signing.load_or_create_signing_key(key_path))}


@needs_ssh_keygen
def test_ssh_keygen_reads_the_key_preflight_creates(tmp_path: Path) -> None:
    signer = _new_signer(tmp_path)

    completed = _ssh_keygen("-y", "-f", str(signer.key_path))

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.decode().split()[:2] == signer.public_path.read_text().split()[:2]


@needs_ssh_keygen
def test_key_made_by_ssh_keygen_loads_with_its_fingerprint(keygen_key: Path) -> None:
    key = signing.load_or_create_signing_key(keygen_key)

    listed = _ssh_keygen("-lf", str(keygen_key.with_name("id_ed25519.pub"))).stdout.decode().split()
    assert signing.fingerprint(key) == listed[1]


def test_pem_ed25519_key_is_accepted(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "key.pem"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)

    assert signing.fingerprint(signing.load_or_create_signing_key(path)) == signing.fingerprint(key)


def _write_key_file(path: Path, kind: str) -> None:
    if kind == "garbage":
        path.write_bytes(b"this is not a key\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "public key":
        path.write_text(signing.public_key_line(Ed25519PrivateKey.generate()) + "\n")
    elif kind in ("encrypted", "rsa"):
        options = (
            ["-t", "ed25519", "-N", "correct horse"] if kind == "encrypted" else ["-t", "rsa", "-b", "1024", "-N", ""]
        )
        assert _ssh_keygen("-q", *options, "-f", str(path)).returncode == 0
    elif kind == "readable by others":
        signing.load_or_create_signing_key(path)
        path.chmod(0o644)
    elif kind == "directory":
        path.mkdir()
    path.chmod(0o600 if kind != "readable by others" else 0o644)


KEY_FILE_ERRORS = [
    ("garbage", "{path}: not an OpenSSH or PEM private key"),
    ("empty", "{path}: not an OpenSSH or PEM private key"),
    ("public key", "{path}: not an OpenSSH or PEM private key"),
    ("encrypted", "{path}: the signing key is encrypted; give an unencrypted Ed25519 key"),
    ("rsa", "{path}: not an Ed25519 key (RSA)"),
    ("readable by others", "{path}: the signing key is readable by others (mode 0644); chmod 600 it"),
    ("directory", "{path}: cannot read the signing key: Is a directory"),
]


@needs_ssh_keygen
@pytest.mark.parametrize(("kind", "message"), KEY_FILE_ERRORS, ids=[kind for kind, _ in KEY_FILE_ERRORS])
def test_unusable_key_file_is_refused_naming_the_file(tmp_path: Path, kind: str, message: str) -> None:
    path = tmp_path / "key"
    _write_key_file(path, kind)
    before = sorted(tmp_path.iterdir())

    with pytest.raises(signing.SigningError) as raised:
        signing.load_or_create_signing_key(path)

    assert str(raised.value) == message.format(path=path)
    assert sorted(tmp_path.iterdir()) == before  # nothing created or replaced


@needs_ssh_keygen
@pytest.mark.parametrize("kind", ["garbage", "encrypted"])
def test_check_with_unusable_signing_key_is_a_one_line_usage_error(tmp_path: Path, kind: str) -> None:
    _write_key_file(tmp_path / "key", kind)
    (tmp_path / "inventory.yaml").write_text("hosts:\n  - name: pbx\n    product: pbxware\n    address: 127.0.0.1\n")

    completed = _preflight("check", "inventory.yaml", "--json", "report.json", "--sign", "key", cwd=tmp_path)

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert len(completed.stderr.splitlines()) == 1
    assert completed.stderr.startswith("preflight: error: --sign key: ")
    assert not (tmp_path / "report.json").exists()


# ---- public keys --------------------------------------------------------------------------------------------------


def test_public_key_is_read_from_pub_file_allowed_signers_or_text(tmp_path: Path, signer: Signer) -> None:
    line = signing.public_key_line(signer.key, comment="support team")
    (tmp_path / "allowed_signers").write_text(f"# who signs reports\n\n{_allowed_signers_line(line)}")

    keys = [
        signing.load_public_key(signer.public_path),
        signing.load_public_key(tmp_path / "allowed_signers"),
        signing.load_public_key(line),
    ]

    assert {signing.fingerprint(key) for key in keys} == {signing.fingerprint(signer.key)}
    assert line.startswith("ssh-ed25519 AAAA") and line.endswith(" support team")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "public key: no ssh-ed25519 public key (expected a line like 'ssh-ed25519 AAAA... comment')"),
        (
            "ssh-rsa AAAAB3NzaC1yc2E= x",
            "public key: no ssh-ed25519 public key (expected a line like 'ssh-ed25519 AAAA... comment')",
        ),
        ("ssh-ed25519 AAAAB3NzaC1yc2E= x", "public key: malformed ssh-ed25519 public key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "public key: is a private key; give the public key (its .pub file)"),
    ],
)
def test_unusable_public_key_is_refused(text: str, message: str) -> None:
    with pytest.raises(signing.SigningError) as raised:
        signing.load_public_key(text)

    assert str(raised.value) == message


def test_public_key_file_with_two_different_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "allowed_signers"
    lines = [signing.public_key_line(Ed25519PrivateKey.generate()) for _ in range(2)]
    path.write_text("".join(_allowed_signers_line(line) for line in lines))

    with pytest.raises(signing.SigningError, match=r"holds 2 different keys"):
        signing.load_public_key(path)


# ---- signatures ---------------------------------------------------------------------------------------------------


def test_signature_is_armored_sshsig_at_70_columns(report: bytes, signer: Signer) -> None:
    lines = signing.sign(report, signer.key).decode().splitlines()

    assert (lines[0], lines[-1]) == ("-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----")
    assert [len(line) for line in lines[1:-2]] == [70] * (len(lines) - 3)
    assert 0 < len(lines[-2]) <= 70
    blob = base64.b64decode("".join(lines[1:-1]))
    assert blob[:10] == b"SSHSIG\x00\x00\x00\x01"


def test_round_trip_and_the_untampered_report_verifies(report: bytes, signer: Signer) -> None:
    signing.verify(report, signing.sign(report, signer.key), signer.key.public_key())


@needs_ssh_keygen
def test_ssh_keygen_signs_the_same_bytes_preflight_signs(tmp_path: Path, report: bytes, signer: Signer) -> None:
    # Ed25519 is deterministic, so the same key, namespace and data give byte-identical SSHSIG files.
    (tmp_path / "report.json").write_bytes(report)

    completed = _ssh_keygen(
        "-Y", "sign", "-n", signing.NAMESPACE, "-f", str(signer.key_path), str(tmp_path / "report.json")
    )

    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "report.json.sig").read_bytes() == signing.sign(report, signer.key)


@needs_ssh_keygen
def test_ssh_keygen_verifies_a_preflight_signature(tmp_path: Path, report: bytes, signer: Signer) -> None:
    (tmp_path / "report.json.sig").write_bytes(signing.sign(report, signer.key))

    completed = _ssh_keygen(
        "-Y", "verify", "-f", str(signer.allowed_signers), "-I", "preflight", "-n", signing.NAMESPACE,
        "-s", str(tmp_path / "report.json.sig"), stdin=report,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    assert signing.fingerprint(signer.key) in completed.stdout.decode()


@needs_ssh_keygen
@pytest.mark.parametrize("hash_algorithm", ["sha512", "sha256"])
def test_preflight_verify_accepts_a_signature_made_by_ssh_keygen(
    tmp_path: Path, report: bytes, keygen_key: Path, hash_algorithm: str
) -> None:
    (tmp_path / "report.json").write_bytes(report)
    signed = _ssh_keygen(
        "-Y", "sign", "-n", signing.NAMESPACE, "-O", f"hashalg={hash_algorithm}", "-f", str(keygen_key),
        str(tmp_path / "report.json"),
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    fingerprint = _ssh_keygen("-lf", f"{keygen_key}.pub").stdout.decode().split()[1]

    completed = _preflight("verify", "report.json", "--key", f"{keygen_key}.pub", cwd=tmp_path)

    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout == f"report.json: valid signature by {fingerprint}\n"


@needs_ssh_keygen
def test_signature_for_another_namespace_is_rejected_by_both(tmp_path: Path, report: bytes, keygen_key: Path) -> None:
    (tmp_path / "report.json").write_bytes(report)
    (tmp_path / "allowed_signers").write_text(_allowed_signers_line(keygen_key.with_name("id_ed25519.pub").read_text()))
    assert _ssh_keygen("-Y", "sign", "-n", "file", "-f", str(keygen_key), str(tmp_path / "report.json")).returncode == 0
    ours = _preflight("verify", "report.json", "--key", f"{keygen_key}.pub", cwd=tmp_path)

    assert (ours.returncode, ours.stdout) == (1, "")
    assert ours.stderr == "report.json: INVALID: wrong namespace 'file' (expected 'preflight-report')\n"
    assert not _ssh_keygen_verifies(tmp_path / "allowed_signers", report, tmp_path / "report.json.sig")
    # Control: the same key and data in the right namespace pass both.
    (tmp_path / "report.json.sig").unlink()
    assert (
        _ssh_keygen(
            "-Y", "sign", "-n", signing.NAMESPACE, "-f", str(keygen_key), str(tmp_path / "report.json")
        ).returncode
        == 0
    )
    assert _preflight("verify", "report.json", "--key", f"{keygen_key}.pub", cwd=tmp_path).returncode == 0
    assert _ssh_keygen_verifies(tmp_path / "allowed_signers", report, tmp_path / "report.json.sig")


@needs_ssh_keygen
def test_signature_by_another_key_is_rejected_by_both(tmp_path: Path, report: bytes, signer: Signer) -> None:
    other = _new_signer(tmp_path)
    (tmp_path / "report.json").write_bytes(report)
    (tmp_path / "report.json.sig").write_bytes(signing.sign(report, other.key))

    ours = _preflight("verify", "report.json", "--key", str(signer.public_path), cwd=tmp_path)

    assert ours.returncode == 1
    assert ours.stderr == (
        f"report.json: INVALID: signed by key {signing.fingerprint(other.key)}, "
        f"not by the trusted key {signing.fingerprint(signer.key)}\n"
    )
    assert not _ssh_keygen_verifies(signer.allowed_signers, report, tmp_path / "report.json.sig")
    # Control: the signer's own key accepts it.
    assert _preflight("verify", "report.json", "--key", str(other.public_path), cwd=tmp_path).returncode == 0
    assert _ssh_keygen_verifies(other.allowed_signers, report, tmp_path / "report.json.sig")


# ---- tampering: every field of a real report, every byte of the signature -----------------------------------------


def _json_tokens(text: bytes) -> list[tuple[int, int]]:
    """(start, end) of every key and every scalar value in a JSON text."""
    tokens, offset = [], 0
    while offset < len(text):
        byte = text[offset : offset + 1]
        if byte == b'"':
            end = offset + 1
            while text[end : end + 1] != b'"':
                end += 2 if text[end : end + 1] == b"\\" else 1
            tokens.append((offset, end + 1))
            offset = end + 1
        elif byte in b"-0123456789" and byte:
            end = offset
            while end < len(text) and text[end : end + 1] in b"-+.eE0123456789":
                end += 1
            tokens.append((offset, end))
            offset = end
        elif text.startswith((b"true", b"false", b"null"), offset):
            end = offset + (5 if text.startswith(b"false", offset) else 4)
            tokens.append((offset, end))
            offset = end
        else:
            offset += 1
    return tokens


def _fields_and_values(document: Any) -> int:
    if isinstance(document, dict):
        return sum(1 + _fields_and_values(value) for value in document.values())
    if isinstance(document, list):
        return sum(_fields_and_values(value) for value in document)
    return 1


def _changed(byte: int) -> int:
    # Another byte of the same kind where one exists, so most edits leave a report that still parses.
    character = chr(byte)
    if character.isdigit():
        return ord("0") + (byte - ord("0") + 1) % 10
    if character.isascii() and character.isalpha():
        return byte ^ 0x20
    return ord("x") if character != "x" else ord("y")


@dataclass(frozen=True)
class Verdicts:
    preflight: dict[str, str]  # case -> preflight's reason ("" when it accepted)
    ssh_keygen: dict[str, bool]  # case -> ssh-keygen accepted


def _judge_all(cases: dict[str, tuple[bytes, bytes]], signer: Signer, folder: Path) -> Verdicts:
    report_path, signature_path = folder / "report.json", folder / "report.json.sig"
    preflight: dict[str, str] = {}
    ssh_keygen: dict[str, bool] = {}
    for name, (data, signature) in cases.items():
        report_path.write_bytes(data)
        signature_path.write_bytes(signature)
        # `preflight verify` itself, in this process: a fresh interpreter per case would cost a second each.
        code = cli.main(["verify", str(report_path), "--key", str(signer.public_path)])
        try:
            signing.verify(data, signature, signer.key.public_key())
            reason = ""
        except signing.SignatureError as exc:
            reason = str(exc)
        assert code == (1 if reason else 0), name
        preflight[name] = reason
        ssh_keygen[name] = _ssh_keygen_verifies(signer.allowed_signers, data, signature_path)
    return Verdicts(preflight, ssh_keygen)


@needs_ssh_keygen
def test_one_byte_changed_in_any_field_of_a_real_report_is_rejected_by_both(
    tmp_path: Path, report: bytes, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    signature = signing.sign(report, signer.key)
    tokens = _json_tokens(report)
    assert len(tokens) == _fields_and_values(json.loads(report))  # every key and every value, no more
    cases = {"untampered": (report, signature)}
    for start, end in tokens:
        # The first byte inside a string's quotes (the quote itself when empty), the first of anything else.
        position = start + 1 if report[start : start + 1] == b'"' and end - start > 2 else start
        tampered = bytearray(report)
        tampered[position] = _changed(report[position])
        cases[f"byte {position} in {report[start:end][:40]!r}"] = (bytes(tampered), signature)

    verdicts = _judge_all(cases, signer, tmp_path)
    capsys.readouterr()

    assert verdicts.preflight.pop("untampered") == ""
    assert verdicts.ssh_keygen.pop("untampered") is True
    assert len(cases) > 800
    assert {
        name for name, reason in verdicts.preflight.items() if not reason.startswith("signature does not match")
    } == set()
    assert {name for name, accepted in verdicts.ssh_keygen.items() if accepted} == set()


def _sshsig_regions(blob: bytes) -> list[tuple[str, int, int]]:
    """(region, start, end) of each part of an SSHSIG blob, length prefixes separate from contents."""
    regions = [("magic", 0, 6), ("version", 6, 10)]
    offset = 10
    for field in ("public key", "namespace", "reserved", "hash algorithm", "signature"):
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        regions += [(f"{field} length", offset, offset + 4), (field, offset + 4, offset + 4 + length)]
        offset += 4 + length
    assert offset == len(blob)
    return regions


# What preflight says when a byte inside each region's contents changes; a changed length is only "rejected".
EXPECTED_REASON = {
    "magic": "not an SSHSIG signature: wrong magic",
    "version": "unsupported SSHSIG version",
    "public key": "signed by key SHA256:",
    "namespace": "wrong namespace",
    "hash algorithm": "unsupported hash algorithm",
}
# OpenSSH refuses only versions above 1 (sshsig.c), and the version is not signed: version 0 passes ssh-keygen.
SSH_KEYGEN_ACCEPTS = {"version byte 9 ^ 0x01"}


@needs_ssh_keygen
def test_one_byte_changed_anywhere_in_the_signature_is_rejected_by_both(
    tmp_path: Path, report: bytes, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    armored = signing.sign(report, signer.key)
    blob = base64.b64decode(b"".join(armored.splitlines()[1:-1]))
    regions = _sshsig_regions(blob)
    assert len(blob) == sum(end - start for _, start, end in regions)
    cases = {"untampered": (report, armored)}
    region_of: dict[str, str] = {}
    for region, start, end in regions:
        for position in range(start, end):
            for mask in (0x01, 0xFF):
                tampered = bytearray(blob)
                tampered[position] ^= mask
                name = f"{region} byte {position} ^ {mask:#04x}"
                cases[name] = (report, _armor(bytes(tampered)))
                region_of[name] = region

    verdicts = _judge_all(cases, signer, tmp_path)
    capsys.readouterr()

    assert verdicts.preflight.pop("untampered") == ""
    assert verdicts.ssh_keygen.pop("untampered") is True
    assert len(cases) == 2 * len(blob) + 1
    assert {name for name, reason in verdicts.preflight.items() if not reason} == set()
    wrong_reason = {
        name: reason
        for name, reason in verdicts.preflight.items()
        if region_of[name] in EXPECTED_REASON and not reason.startswith(EXPECTED_REASON[region_of[name]])
    }
    assert wrong_reason == {}
    signature_bytes = {name for name in verdicts.preflight if region_of[name] == "signature"}
    assert any(verdicts.preflight[name].startswith("signature does not match") for name in signature_bytes)
    assert {name for name, accepted in verdicts.ssh_keygen.items() if accepted} == SSH_KEYGEN_ACCEPTS


@needs_ssh_keygen
def test_ssh_keygen_accepts_sshsig_version_0_but_preflight_refuses_it(
    tmp_path: Path, report: bytes, signer: Signer
) -> None:
    blob = bytearray(base64.b64decode(b"".join(signing.sign(report, signer.key).splitlines()[1:-1])))
    blob[6:10] = struct.pack(">I", 0)
    (tmp_path / "report.json.sig").write_bytes(_armor(bytes(blob)))

    with pytest.raises(signing.SignatureError, match=r"^unsupported SSHSIG version 0 \(expected 1\)$"):
        signing.verify(report, _armor(bytes(blob)), signer.key.public_key())
    # If OpenSSH ever refuses it too, SSH_KEYGEN_ACCEPTS above becomes empty.
    assert _ssh_keygen_verifies(signer.allowed_signers, report, tmp_path / "report.json.sig")


def _armor(blob: bytes) -> bytes:
    encoded = base64.b64encode(blob)
    lines = [encoded[start : start + 70] for start in range(0, len(encoded), 70)]
    return b"\n".join([b"-----BEGIN SSH SIGNATURE-----", *lines, b"-----END SSH SIGNATURE-----"]) + b"\n"


ARMOR_DAMAGE = [
    (
        "header changed",
        lambda sig: sig.replace(b"BEGIN SSH", b"BEGIN SSX"),
        "not an armored SSH signature: it does not start with",
    ),
    ("header missing", lambda sig: sig.split(b"\n", 1)[1], "not an armored SSH signature: it does not start with"),
    (
        "footer missing",
        lambda sig: sig.rsplit(b"-----END", 1)[0],
        "not an armored SSH signature: no -----END SSH SIGNATURE----- line",
    ),
    (
        "footer changed",
        lambda sig: sig.replace(b"END SSH", b"END SSX"),
        "not an armored SSH signature: no -----END SSH SIGNATURE----- line",
    ),
    ("not base64", lambda sig: sig.replace(b"U1NIU0lH", b"U1NIU0l!"), "bad base64 in the signature"),
    (
        "last line cut",
        lambda sig: b"\n".join(sig.splitlines()[:-2] + sig.splitlines()[-1:]) + b"\n",
        "bad base64 in the signature",
    ),
    ("a base64 character", lambda sig: sig.replace(b"U1NIU0lH", b"U1NIU0lI"), "not an SSHSIG signature: wrong magic"),
    ("empty file", lambda sig: b"", "not an armored SSH signature: it does not start with"),
]


@needs_ssh_keygen
@pytest.mark.parametrize(
    ("damage", "reason"),
    [(damage, reason) for _, damage, reason in ARMOR_DAMAGE],
    ids=[name for name, _, _ in ARMOR_DAMAGE],
)
def test_damaged_armor_is_rejected_by_both_with_the_reason(
    tmp_path: Path, report: bytes, signer: Signer, damage: Any, reason: str
) -> None:
    armored = signing.sign(report, signer.key)
    damaged: bytes = damage(armored)
    assert damaged != armored

    verdicts = _judge_all({"untampered": (report, armored), "damaged": (report, damaged)}, signer, tmp_path)

    assert (verdicts.preflight["untampered"], verdicts.ssh_keygen["untampered"]) == ("", True)
    assert verdicts.preflight["damaged"].startswith(reason)
    assert verdicts.ssh_keygen["damaged"] is False


def test_reasons_are_one_line_even_for_hostile_fields(report: bytes, signer: Signer) -> None:
    armored = signing.sign(report, signer.key)
    blob = base64.b64decode(b"".join(armored.splitlines()[1:-1]))
    regions = {region: (start, end) for region, start, end in _sshsig_regions(blob)}
    start, end = regions["namespace"]
    hostile = blob[:start] + b"preflight\nreport" + blob[end:]
    assert len(hostile) == len(blob)

    with pytest.raises(signing.SignatureError) as raised:
        signing.verify(report, _armor(hostile), signer.key.public_key())

    assert str(raised.value) == "wrong namespace 'preflight\\nreport' (expected 'preflight-report')"


# ---- the command line ---------------------------------------------------------------------------------------------


@pytest.fixture
def signed_report(tmp_path: Path, report: bytes, signer: Signer) -> Path:
    path = tmp_path / "report.json"
    path.write_bytes(report)
    (tmp_path / "report.json.sig").write_bytes(signing.sign(report, signer.key))
    return path


def test_verify_exit_codes(tmp_path: Path, signed_report: Path, signer: Signer, report: bytes) -> None:
    key = str(signer.public_path)
    valid = _preflight("verify", "report.json", "--key", key, cwd=tmp_path)
    assert (valid.returncode, valid.stdout, valid.stderr) == (
        0, f"report.json: valid signature by {signing.fingerprint(signer.key)}\n", ""
    )  # fmt: skip

    (tmp_path / "edited.json").write_bytes(report.replace(b'"ready": false', b'"ready": true ', 1))
    invalid = _preflight("verify", "edited.json", "--signature", "report.json.sig", "--key", key, cwd=tmp_path)
    assert (invalid.returncode, invalid.stdout) == (1, "")
    assert invalid.stderr == (
        "edited.json: INVALID: signature does not match the data: the report or the signature was changed\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["verify", "missing.json", "--key", "{key}"],
            "preflight: error: missing.json: cannot read: No such file or directory",
        ),
        (
            ["verify", "report.json", "--signature", "missing.sig", "--key", "{key}"],
            "preflight: error: missing.sig: cannot read: No such file or directory",
        ),
        (
            ["verify", "report.json", "--key", "missing.pub"],
            "preflight: error: missing.pub: cannot read the public key: No such file or directory",
        ),
        (
            ["verify", "report.json", "--key", "report.json"],
            "preflight: error: report.json: no ssh-ed25519 public key (expected a line like 'ssh-ed25519 AAAA... comment')",
        ),
        (
            ["verify", "report.json", "--key", "{private}"],
            "preflight: error: {private}: is a private key; give the public key (its .pub file)",
        ),
        (
            ["verify", "report.json"],
            "preflight: error: verify: say which key to trust with --key PUBKEY (there is no default key at {state}/preflight/signing_key.pub)",
        ),
        (["verify"], "preflight verify: error: the following arguments are required: REPORT.json"),
    ],
)
def test_verify_usage_errors_are_one_line_with_exit_2(
    tmp_path: Path, signed_report: Path, signer: Signer, args: list[str], message: str
) -> None:
    names = {"key": str(signer.public_path), "private": str(signer.key_path), "state": str(tmp_path / "state")}

    completed = _preflight(*[arg.format(**names) for arg in args], cwd=tmp_path, state=tmp_path / "state")

    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr == message.format(**names) + "\n"


def test_verify_trusts_the_default_key_in_the_state_folder(tmp_path: Path, signed_report: Path, signer: Signer) -> None:
    state = tmp_path / "state"
    (state / "preflight").mkdir(parents=True)
    shutil.copy(signer.public_path, state / "preflight" / "signing_key.pub")

    completed = _preflight("verify", "report.json", cwd=tmp_path, state=state)

    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout == f"report.json: valid signature by {signing.fingerprint(signer.key)}\n"


@needs_ssh_keygen
def test_check_sign_writes_a_signature_over_the_json_file_that_both_verify(tmp_path: Path) -> None:
    (tmp_path / "inventory.yaml").write_text("hosts:\n  - name: pbx\n    product: pbxware\n    address: 127.0.0.1\n")

    completed = _preflight(
        "check", "inventory.yaml", "--only", "tcp", "--tcp-method", "connect", "--timeout", "2",
        "--json", "report.json", "--sign", "keys/signing_key", cwd=tmp_path,
    )  # fmt: skip

    assert completed.returncode in (0, 1), completed.stderr
    assert "Signature: report.json.sig" in completed.stdout.splitlines()
    assert stat.S_IMODE((tmp_path / "keys" / "signing_key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    public_line = (tmp_path / "keys" / "signing_key.pub").read_text()
    (tmp_path / "allowed_signers").write_text(_allowed_signers_line(public_line.strip()))
    data = (tmp_path / "report.json").read_bytes()
    assert _ssh_keygen_verifies(tmp_path / "allowed_signers", data, tmp_path / "report.json.sig")
    ours = _preflight("verify", "report.json", "--key", "keys/signing_key.pub", cwd=tmp_path)
    assert ours.returncode == 0, ours.stderr


@pytest.mark.parametrize("json_option", [[], ["--json", "-"]])
def test_check_sign_without_a_json_file_is_refused_before_probing(tmp_path: Path, json_option: list[str]) -> None:
    (tmp_path / "inventory.yaml").write_text("hosts:\n  - name: pbx\n    product: pbxware\n    address: 127.0.0.1\n")

    completed = _preflight("check", "inventory.yaml", *json_option, "--sign", "signing_key", cwd=tmp_path)

    assert (completed.returncode, completed.stdout) == (2, "")
    assert (
        completed.stderr == "preflight: error: --sign needs --json PATH: the signature is over the bytes of that file\n"
    )
    assert not (tmp_path / "signing_key").exists()
