"""preflight's known_hosts file: OpenSSH's format and names, first-contact recording, safe concurrent writes."""

from __future__ import annotations

import multiprocessing
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest

from preflight.known_hosts import (
    HostKeyState,
    KnownHostsFile,
    default_path,
    entry_line,
    entry_name,
    fingerprint_of,
    make_usable,
)
from tests.requirements import needs_ssh_keygen

KEY = paramiko.ECDSAKey.generate()
OTHER_KEY = paramiko.ECDSAKey.generate()
KEY_TYPE = KEY.get_name()


def _verify(path: Path, name: str, key: paramiko.PKey = KEY, *, record: bool = True) -> HostKeyState:
    return KnownHostsFile(path).verify(name, key.get_name(), key.asbytes(), record=record).state


@pytest.mark.parametrize(
    ("address", "port", "name"),
    [
        ("192.0.2.7", 2020, "[192.0.2.7]:2020"),
        ("192.0.2.7", 22, "192.0.2.7"),
        ("2001:DB8:0:0::1", 2222, "[2001:db8::1]:2222"),
        ("PBX.Example.com.", 2020, "[pbx.example.com]:2020"),
    ],
)
def test_entries_are_named_as_openssh_names_them(address: str, port: int, name: str) -> None:
    assert entry_name(address, port) == name


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_STATE_HOME": "/srv/state"}, Path("/srv/state/preflight/known_hosts")),
        ({"XDG_STATE_HOME": "relative/state"}, Path.home() / ".local/state/preflight/known_hosts"),
        ({}, Path.home() / ".local/state/preflight/known_hosts"),
    ],
)
def test_default_file_follows_xdg_state_home(environ: dict[str, str], expected: Path) -> None:
    assert default_path(environ) == expected


def test_first_contact_records_then_the_same_key_is_known_and_another_is_changed(tmp_path: Path) -> None:
    path = tmp_path / "state" / "preflight" / "known_hosts"

    assert _verify(path, "[192.0.2.7]:2020") is HostKeyState.RECORDED
    assert _verify(path, "[192.0.2.7]:2020") is HostKeyState.KNOWN
    changed = KnownHostsFile(path).verify("[192.0.2.7]:2020", KEY_TYPE, OTHER_KEY.asbytes(), record=True)
    assert (changed.state, changed.known_fingerprints) == (HostKeyState.CHANGED, (fingerprint_of(KEY.asbytes()),))
    assert _verify(path, "[192.0.2.7]:2222", OTHER_KEY) is HostKeyState.RECORDED
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_unknown_host_is_not_recorded_when_recording_is_off(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"

    assert _verify(path, "[192.0.2.7]:2020", record=False) is HostKeyState.UNKNOWN
    assert not path.exists()


def test_a_known_host_presenting_another_key_type_counts_as_changed(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    rsa_key = paramiko.RSAKey.generate(1024)
    _verify(path, "[192.0.2.7]:2020", rsa_key)

    assert _verify(path, "[192.0.2.7]:2020") is HostKeyState.CHANGED


@needs_ssh_keygen
def test_ssh_keygen_finds_what_preflight_records(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    _verify(path, "[192.0.2.7]:2020")
    _verify(path, "[2001:db8::1]:2222", OTHER_KEY)

    for name, key in (("[192.0.2.7]:2020", KEY), ("[2001:db8::1]:2222", OTHER_KEY)):
        found = subprocess.run(
            ["ssh-keygen", "-F", name, "-f", str(path)], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        assert f"{name} {KEY_TYPE} {key.get_base64()}" in found


@needs_ssh_keygen
def test_hashed_entries_written_by_openssh_are_understood(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(entry_line("[192.0.2.7]:2020", KEY_TYPE, KEY.asbytes()) + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], capture_output=True, timeout=30, check=True)
    assert path.read_text().startswith("|1|")

    assert _verify(path, "[192.0.2.7]:2020") is HostKeyState.KNOWN
    assert _verify(path, "[192.0.2.7]:2020", OTHER_KEY) is HostKeyState.CHANGED
    assert _verify(path, "[192.0.2.8]:2020", OTHER_KEY) is HostKeyState.RECORDED


@pytest.mark.parametrize(
    ("line_names", "name", "state"),
    [
        ("[192.0.2.7]:2020,pbx", "[192.0.2.7]:2020", HostKeyState.KNOWN),
        ("[192.0.2.*]:2020", "[192.0.2.9]:2020", HostKeyState.KNOWN),
        ("[192.0.2.?]:2020", "[192.0.2.10]:2020", HostKeyState.RECORDED),
        ("[192.0.2.*]:2020,![192.0.2.9]:2020", "[192.0.2.9]:2020", HostKeyState.RECORDED),
        ("[192.0.2.7]:2222", "[192.0.2.7]:2020", HostKeyState.RECORDED),
    ],
)
def test_openssh_patterns_select_the_entries_of_a_host(
    tmp_path: Path, line_names: str, name: str, state: HostKeyState
) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"# comment\n\n{entry_line(line_names, KEY_TYPE, KEY.asbytes())}\nnot a key line\n")

    assert _verify(path, name) is state


def test_a_revoked_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"@revoked {entry_line('*', KEY_TYPE, KEY.asbytes())}\n")

    assert _verify(path, "[192.0.2.7]:2020") is HostKeyState.REVOKED


def test_recording_keeps_the_lines_already_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("# kept\n@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\nbroken line")
    path.chmod(0o644)

    _verify(path, "[192.0.2.7]:2020")

    assert path.read_text().splitlines()[:3] == [
        "# kept",
        "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA",
        "broken line",
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_concurrent_first_contacts_from_many_threads_each_record_once(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    names = [f"[198.18.0.{index}]:2020" for index in range(60)]
    shared = KnownHostsFile(path)

    with ThreadPoolExecutor(max_workers=16) as pool:
        states = list(pool.map(lambda name: shared.verify(name, KEY_TYPE, KEY.asbytes(), record=True).state, names * 2))

    assert states.count(HostKeyState.RECORDED) == len(names)
    assert sorted(path.read_text().splitlines()) == sorted(entry_line(name, KEY_TYPE, KEY.asbytes()) for name in names)


def _record_from_another_process(path: str, first: int, count: int, key_blob: bytes) -> None:
    store = KnownHostsFile(Path(path))
    for index in range(first, first + count):
        store.verify(f"[198.18.1.{index}]:2020", KEY_TYPE, key_blob, record=True)


def test_concurrent_preflight_processes_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_record_from_another_process, args=(str(path), first, 25, KEY.asbytes()))
        for first in (0, 25, 50, 75)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)

    assert len(set(path.read_text().splitlines())) == 100


def test_make_usable_creates_a_private_file_in_a_private_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "known_hosts"

    make_usable(path)

    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


VALID_INVENTORY = "hosts:\n  - {name: pbx, product: pbxware, address: 127.0.0.1, require_public_ip: false}\n"


@pytest.mark.parametrize(
    ("known_hosts_arg", "message"),
    [
        ("{dir}", "preflight: error: --known-hosts {dir}: cannot write: Is a directory"),
        ("{file}/known_hosts", "preflight: error: --known-hosts {file}/known_hosts: cannot write: Not a directory"),
    ],
)
def test_unusable_known_hosts_path_is_a_usage_error_before_any_probe(
    tmp_path: Path, known_hosts_arg: str, message: str
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(VALID_INVENTORY)
    placeholders = {"{dir}": str(tmp_path), "{file}": str(inventory)}
    for placeholder, value in placeholders.items():
        known_hosts_arg = known_hosts_arg.replace(placeholder, value)
        message = message.replace(placeholder, value)

    completed = subprocess.run(
        [sys.executable, "-m", "preflight", "check", str(inventory), "--known-hosts", known_hosts_arg],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert (completed.returncode, completed.stdout, completed.stderr) == (2, "", message + "\n")


def test_known_hosts_options_are_in_the_help() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "preflight", "check", "--help"], capture_output=True, text=True, timeout=60
    )

    assert "--known-hosts PATH" in completed.stdout
    assert "--strict-host-keys" in completed.stdout
