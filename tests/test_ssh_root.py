"""ssh-root/<port> against a stand-in SSH server on loopback: every outcome, what the server was sent, and the deadline.

The stand-in is paramiko's server side, so a test chooses exactly which methods are offered, which prompts are
asked and what `id -u` prints, and can prove what the probe did and did not send.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest
from paramiko.common import AUTH_FAILED, AUTH_SUCCESSFUL, OPEN_SUCCEEDED
from paramiko.server import InteractiveQuery

from preflight import known_hosts
from preflight.deadline import Deadline
from preflight.inventory import Host
from preflight.model import Finding, Status
from preflight.options import RunOptions
from preflight.probes import ssh_root
from preflight.profiles import load_profiles
from preflight.target import Target
from tests.deadlines import within_deadline
from tests.loopback import loopback_server

PROFILES = load_profiles()
ROOT_PASSWORD = "standin-root-secret-7f3a"
DEADLINE_SECONDS = 2.0
SLACK_SECONDS = 1.0
HOST_KEY = paramiko.ECDSAKey.generate()
OTHER_HOST_KEY = paramiko.ECDSAKey.generate()


@dataclass
class StandIn:
    """What the stand-in allows and answers, and what it was sent."""

    allowed: str = "password"
    # Keyboard-interactive rounds: the next round's prompts come once the previous round is answered correctly.
    rounds: Sequence[Sequence[str]] = (("Password:",),)
    uid_output: bytes = b"0\n"
    stall_auth_seconds: float = 0.0
    host_key: paramiko.PKey = HOST_KEY
    auth_requests: list[str] = field(default_factory=list)
    passwords_received: list[str] = field(default_factory=list)
    answers_received: list[list[str]] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)

    def everything_sent(self) -> list[str]:
        return self.passwords_received + [answer for answers in self.answers_received for answer in answers]


class _StandInServer(paramiko.ServerInterface):
    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self.round = 0

    def get_allowed_auths(self, username: str) -> str:
        return self.stand_in.allowed

    def check_auth_none(self, username: str) -> int:
        self.stand_in.auth_requests.append(f"none:{username}")
        time.sleep(self.stand_in.stall_auth_seconds)
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        self.stand_in.auth_requests.append(f"password:{username}")
        self.stand_in.passwords_received.append(password)
        return AUTH_SUCCESSFUL if password == ROOT_PASSWORD else AUTH_FAILED

    def check_auth_interactive(self, username: str, submethods: str) -> int | InteractiveQuery:
        self.stand_in.auth_requests.append(f"keyboard-interactive:{username}")
        self.round = 0
        return self._query()

    def check_auth_interactive_response(self, responses: list[str]) -> int | InteractiveQuery:
        self.stand_in.answers_received.append(list(responses))
        if any(answer != ROOT_PASSWORD for answer in responses):
            return AUTH_FAILED
        self.round += 1
        return self._query() if self.round < len(self.stand_in.rounds) else AUTH_SUCCESSFUL

    def _query(self) -> InteractiveQuery:
        query = InteractiveQuery()
        for prompt in self.stand_in.rounds[self.round]:
            query.add_prompt(prompt, echo=False)
        return query

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.stand_in.commands.append(command)

        def answer() -> None:
            # After the request's reply, as a real server runs the command: here, in paramiko's own thread.
            channel.sendall(self.stand_in.uid_output)
            channel.send_exit_status(0)
            channel.close()

        threading.Timer(0.01, answer).start()
        return True


@contextlib.contextmanager
def serving(stand_in: StandIn) -> Iterator[int]:
    """The stand-in on a loopback port, each connection held at most past the probe's deadline; yields the port."""
    lifetime = DEADLINE_SECONDS + SLACK_SECONDS

    def serve(connection: socket.socket) -> None:
        with paramiko.Transport(connection) as transport:
            transport.add_server_key(stand_in.host_key)
            transport.start_server(server=_StandInServer(stand_in))
            ends_at = time.monotonic() + lifetime
            while transport.is_active() and time.monotonic() < ends_at:
                time.sleep(0.02)

    with loopback_server(serve, lifetime) as port:
        yield port


def _target(port: int, known_hosts_file: Path, *, strict: bool = False, ssh: dict[str, Any] | None = None) -> Target:
    host = Host.model_validate(
        {
            "name": "standin",
            "product": "pbxware",
            "address": "127.0.0.1",
            "ssh": {"root_password": ROOT_PASSWORD, **(ssh or {})},
        },
        context={"profiles": PROFILES, "inventory_dir": Path.cwd()},
    )
    options = RunOptions(known_hosts=known_hosts_file, strict_host_keys=strict)
    return Target(f"ssh-root/{port}", "r", host, PROFILES["pbxware"], port=port, ip="127.0.0.1", options=options)


def _check(
    stand_in: StandIn, known_hosts_file: Path, *, recorded_key: paramiko.PKey | None = None, **target_options: Any
) -> tuple[Finding, float]:
    """Run the probe against `stand_in`; `recorded_key` is put in the known_hosts file for its port first."""
    with serving(stand_in) as port:
        if recorded_key is not None:
            _record(known_hosts_file, port, recorded_key)
        started = time.monotonic()
        finding = ssh_root.run(_target(port, known_hosts_file, **target_options), Deadline(DEADLINE_SECONDS))
        elapsed = time.monotonic() - started
    assert ROOT_PASSWORD not in repr(finding)
    assert finding.status is Status.PASS or finding.remediation
    return finding, elapsed


def _record(known_hosts_file: Path, port: int, key: paramiko.PKey) -> None:
    name = known_hosts.entry_name("127.0.0.1", port)
    verdict = known_hosts.KnownHostsFile(known_hosts_file).verify(name, key.get_name(), key.asbytes(), record=True)
    assert verdict.state is known_hosts.HostKeyState.RECORDED


@pytest.fixture
def known_hosts_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "known_hosts"


@pytest.mark.parametrize(
    ("prompt", "is_password"),
    [
        ("Password:", True),
        ("Password: ", True),
        ("root@pbx's password: ", True),
        ("Password for root@pbx.example.com:", True),
        ("Verification code:", False),
        ("One-time password (OATH) for `root':", False),
        ("OTP:", False),
        ("Enter your token:", False),
        ("Passcode or option (1-3):", False),
        ("Enter PIN for 'YubiKey':", False),
        ("New password:", False),
        ("Retype new password:", False),
        ("Username:", False),
    ],
)
def test_only_password_prompts_get_the_password(prompt: str, is_password: bool) -> None:
    assert ssh_root.is_password_prompt(prompt) is is_password


def test_password_login_passes_with_uid_0_and_records_the_host_key(known_hosts_file: Path) -> None:
    stand_in = StandIn(allowed="publickey,password")

    finding, _ = _check(stand_in, known_hosts_file)

    assert finding.status is Status.PASS
    evidence = finding.evidence
    assert (evidence["outcome"], evidence["auth_method"], evidence["uid"]) == ("root-login", "password", 0)
    assert evidence["auth_methods_offered"] == ["publickey", "password"]
    assert evidence["host_key_check"] == "recorded on first contact"
    assert evidence["host_key_fingerprint"] == ssh_root.fingerprint(HOST_KEY)
    assert evidence["banner"].startswith("SSH-2.0-")
    assert stand_in.auth_requests[0] == "none:root"
    assert stand_in.commands == [b"id -u"]


def test_keyboard_interactive_only_answers_the_password_prompt(known_hosts_file: Path) -> None:
    stand_in = StandIn(allowed="publickey,keyboard-interactive")

    finding, _ = _check(stand_in, known_hosts_file)

    assert (finding.status, finding.evidence["auth_method"]) == (Status.PASS, "keyboard-interactive")
    assert finding.evidence["prompts"] == ["Password:"]
    assert stand_in.answers_received == [[ROOT_PASSWORD]]


def test_one_time_code_prompt_never_gets_the_password(known_hosts_file: Path) -> None:
    stand_in = StandIn(allowed="keyboard-interactive", rounds=(("Verification code:",),))

    finding, _ = _check(stand_in, known_hosts_file)

    assert finding.status is Status.FAIL
    assert finding.evidence["outcome"] == "one-time-code-required"
    assert "the account requires a one-time code" in finding.summary
    assert "'Verification code:'" in finding.summary
    assert stand_in.everything_sent() == []


def test_code_asked_after_the_password_gets_nothing_more(known_hosts_file: Path) -> None:
    stand_in = StandIn(allowed="keyboard-interactive", rounds=(("Password:",), ("Verification code:",)))

    finding, _ = _check(stand_in, known_hosts_file)

    assert finding.evidence["outcome"] == "one-time-code-required"
    assert stand_in.answers_received == [[ROOT_PASSWORD]]


def test_expired_password_is_not_changed(known_hosts_file: Path) -> None:
    stand_in = StandIn(allowed="keyboard-interactive", rounds=(("Password:",), ("New password:",)))

    finding, _ = _check(stand_in, known_hosts_file)

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "password-change-required")
    assert stand_in.answers_received == [[ROOT_PASSWORD]]


def test_server_without_password_methods_lists_what_it_offers(known_hosts_file: Path) -> None:
    stand_in = StandIn(allowed="publickey,gssapi-with-mic")

    finding, _ = _check(stand_in, known_hosts_file)

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "password-auth-disabled")
    assert "(it offers: publickey, gssapi-with-mic)" in finding.summary
    assert stand_in.everything_sent() == []


def test_password_is_not_sent_again_by_keyboard_interactive_after_a_refusal(known_hosts_file: Path) -> None:
    stand_in = StandIn(allowed="password,keyboard-interactive")

    finding, _ = _check(stand_in, known_hosts_file, ssh={"root_password": "not-the-standin-password"})

    assert finding.evidence["outcome"] == "password-refused"
    assert "cannot tell which" in finding.summary
    assert stand_in.auth_requests == ["none:root", "password:root"]


def test_session_whose_id_is_not_0_reports_the_uid(known_hosts_file: Path) -> None:
    stand_in = StandIn(uid_output=b"1000\n")

    finding, _ = _check(stand_in, known_hosts_file)

    assert (finding.status, finding.evidence["outcome"], finding.evidence["uid"]) == (Status.FAIL, "not-root", 1000)
    assert "printed '1000', not 0" in finding.summary


@pytest.mark.deadline
def test_authentication_that_never_answers_times_out_within_the_deadline(known_hosts_file: Path) -> None:
    stand_in = StandIn(stall_auth_seconds=DEADLINE_SECONDS + SLACK_SECONDS)

    finding, elapsed = _check(stand_in, known_hosts_file)

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "auth-timeout")
    assert "during authentication" in finding.summary
    assert finding.evidence["banner"].startswith("SSH-2.0-")
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


@pytest.mark.deadline
def test_silent_port_is_a_banner_timeout_within_the_deadline(known_hosts_file: Path) -> None:
    def tarpit(connection: socket.socket) -> None:
        time.sleep(DEADLINE_SECONDS + SLACK_SECONDS)

    with loopback_server(tarpit, DEADLINE_SECONDS + SLACK_SECONDS) as port:
        started = time.monotonic()
        finding = ssh_root.run(_target(port, known_hosts_file), Deadline(DEADLINE_SECONDS))
        elapsed = time.monotonic() - started

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "banner-timeout")
    assert "no SSH banner" in finding.summary
    within_deadline(elapsed, DEADLINE_SECONDS + SLACK_SECONDS)


def test_changed_host_key_sends_no_authentication_at_all(known_hosts_file: Path) -> None:
    impostor = StandIn()

    finding, _ = _check(impostor, known_hosts_file, recorded_key=OTHER_HOST_KEY)

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "host-key-changed")
    assert finding.summary.startswith("host key changed, possible interception")
    assert finding.evidence["known_host_key_fingerprints"] == [ssh_root.fingerprint(OTHER_HOST_KEY)]
    assert "ssh-keygen -R" in finding.remediation
    assert impostor.auth_requests == []


def test_strict_host_keys_sends_nothing_to_an_unknown_host_and_records_nothing(known_hosts_file: Path) -> None:
    stand_in = StandIn()

    finding, _ = _check(stand_in, known_hosts_file, strict=True)

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "host-key-unknown")
    assert ssh_root.fingerprint(HOST_KEY) in finding.remediation
    assert finding.evidence["known_hosts_line"] in finding.remediation
    assert stand_in.auth_requests == []
    assert not known_hosts_file.exists()


def test_strict_host_keys_logs_in_to_a_recorded_host(known_hosts_file: Path) -> None:
    finding, _ = _check(StandIn(), known_hosts_file, recorded_key=HOST_KEY, strict=True)

    assert (finding.status, finding.evidence["host_key_check"]) == (Status.PASS, "matches known_hosts")


def test_inventory_pin_overrides_the_known_hosts_file(known_hosts_file: Path) -> None:
    pin = {"host_key": ssh_root.fingerprint(HOST_KEY)}

    finding, _ = _check(StandIn(), known_hosts_file, recorded_key=OTHER_HOST_KEY, ssh=pin)

    assert (finding.status, finding.evidence["host_key_check"]) == (Status.PASS, "matches the inventory pin")
    assert known_hosts_file.read_text().splitlines() == [
        known_hosts.entry_line(
            known_hosts.entry_name("127.0.0.1", finding.evidence["port"]),
            "ecdsa-sha2-nistp256",
            OTHER_HOST_KEY.asbytes(),
        )
    ]


def test_known_key_type_is_asked_for_first(known_hosts_file: Path) -> None:
    # paramiko would choose ECDSA over RSA; with only the RSA key on file, preflight must ask for RSA, as OpenSSH does.
    rsa_key = paramiko.RSAKey.generate(2048)
    lifetime = DEADLINE_SECONDS + SLACK_SECONDS

    def serve_both_keys(connection: socket.socket) -> None:
        with paramiko.Transport(connection) as transport:
            transport.add_server_key(rsa_key)
            transport.add_server_key(HOST_KEY)
            transport.start_server(server=_StandInServer(StandIn()))
            ends_at = time.monotonic() + lifetime
            while transport.is_active() and time.monotonic() < ends_at:
                time.sleep(0.02)

    with loopback_server(serve_both_keys, lifetime) as port:
        known_hosts_file.parent.mkdir(parents=True)
        name = known_hosts.entry_name("127.0.0.1", port)
        known_hosts_file.write_text(known_hosts.entry_line(name, "ssh-rsa", rsa_key.asbytes()) + "\n")
        finding = ssh_root.run(_target(port, known_hosts_file), Deadline(DEADLINE_SECONDS))

    assert (finding.status, finding.evidence["host_key_check"]) == (Status.PASS, "matches known_hosts")
    assert finding.evidence["host_key_type"] == "ssh-rsa"


def test_unreadable_known_hosts_file_sends_no_authentication(tmp_path: Path) -> None:
    stand_in = StandIn()

    finding, _ = _check(stand_in, tmp_path)

    assert (finding.status, finding.evidence["outcome"]) == (Status.FAIL, "known-hosts-unreadable")
    assert "the password was not sent" in finding.summary
    assert stand_in.auth_requests == []
