"""ssh-root/<port>: support must be able to log in as root over SSH, and `id -u` must print 0.

The login is driven at paramiko's Transport level, so no agent key and no ~/.ssh key is ever offered. `auth_none`
learns the methods the server allows; then the key file (with its OpenSSH user certificate, if the inventory names
one: judged for its validity dates before connecting), the password, or keyboard-interactive answering only password
prompts. The host key is judged (inventory pin, else preflight's known_hosts file) before anything that
authenticates is sent.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import paramiko
from pydantic import SecretStr

from preflight import known_hosts
from preflight.deadline import Deadline
from preflight.inventory import Credentials, Host
from preflight.model import Finding, Status
from preflight.probes.service import BANNER_BYTES_LIMIT, BANNER_LINE_LIMIT
from preflight.profiles import Profile
from preflight.ssh_certificate import TIME_FORMAT, read_user_certificate
from preflight.target import Target

REQUIREMENT = "Support logs in as root over SSH on TCP {port} with the root password you provide."
UID_COMMAND = "id -u"
ROOT = "root"
_OUTPUT_LIMIT = 4096
# A uid is at most 10 digits; a longer run of digits is shown as text, never turned into a huge integer.
_UID_DIGITS = 10
_SHOWN_LIMIT = 120
# A paramiko wait that ends this close to the deadline ended because of it.
_DEADLINE_SLACK_SECONDS = 0.05
# Multi-step logins (AuthenticationMethods a,b) take one step per method; no server needs more than this.
_MAX_AUTH_STEPS = 3
_PASSWORD_WORD = re.compile(r"\bpass(word|wd)\b", re.IGNORECASE)
_SECOND_FACTOR_WORDS = re.compile(
    r"one[- ]?time|\botp\b|oath|verification|\bcode\b|token|passcode|\bpin\b|2fa|two[- ]factor|authenticator"
    r"|\bduo\b|yubi",
    re.IGNORECASE,
)
_PASSWORD_CHANGE_WORDS = re.compile(r"\bnew\b|retype|again|confirm|expired|\bchange\b", re.IGNORECASE)
_HOST_KEY_FILES = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "ssh-dss": "dsa"}


def plan(host: Host, profile: Profile) -> list[Target]:
    return [
        Target(
            check_id=f"ssh-root/{required.port}",
            requirement=REQUIREMENT.format(port=required.port),
            host=host,
            profile=profile,
            port=required.port,
            needs=f"service/{required.port}",
        )
        for required in profile.ports_for("ssh")
    ]


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint exactly as `ssh-keygen -lf` prints it."""
    return known_hosts.fingerprint_of(key.asbytes())


def is_password_prompt(prompt: str) -> bool:
    """Whether a keyboard-interactive prompt asks for the account password, and for nothing else."""
    return bool(_PASSWORD_WORD.search(prompt)) and not (
        _SECOND_FACTOR_WORDS.search(prompt) or _PASSWORD_CHANGE_WORDS.search(prompt)
    )


class _Stop(Exception):
    """Ends the check with `finding`."""

    def __init__(self, finding: Finding) -> None:
        self.finding = finding


class _PromptDeclined(paramiko.SSHException):
    """Raised inside paramiko's keyboard-interactive handler: the prompt does not get the password."""

    def __init__(self, outcome: str, prompt: str) -> None:
        super().__init__(f"{outcome}: {prompt}")
        self.outcome = outcome
        self.prompt = prompt


class _DeclineIsNotAnError(logging.Filter):
    """paramiko logs the exception a prompt handler raises as an ERROR with its traceback; a decline is a decision.

    paramiko logs those lines inside its `except` block, so the exception being handled says which they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        declined = sys.exc_info()[1]
        if not isinstance(declined, _PromptDeclined):
            return True
        if not record.getMessage().startswith("Exception ("):
            return False  # a line of the traceback
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        record.msg, record.args = f"keyboard-interactive prompt declined ({declined.outcome})", ()
        return True


logging.getLogger("paramiko.transport").addFilter(_DeclineIsNotAnError())


def run(target: Target, deadline: Deadline) -> Finding:
    ip, port = target.endpoint()
    credentials = target.host.ssh.credentials_for(port)
    if not credentials.provided:
        return _finding(
            Status.FAIL,
            "credentials-missing",
            f"root credentials not provided for SSH port {port}",
            {"port": port},
            f"Support needs the root password for SSH on TCP {port}: add ssh.root_password to this host "
            "in the inventory (written as ${ENV_VAR}).",
        )
    evidence: dict[str, Any] = {"port": port}
    try:
        key = _load_key(credentials.key_file, credentials.key_passphrase, port) if credentials.key_file else None
        if key is not None and credentials.certificate_file is not None:
            # Judged before connecting: a certificate that cannot work costs no connection and sends nothing.
            _attach_certificate(key, credentials.certificate_file, port, evidence)
        # An inventory pin replaces the file; the file is read before connecting, so a bad one costs no connection.
        lookup = None if target.host.ssh.host_key else _look_up_known_hosts(target, evidence)
    except _Stop as stop:
        return stop.finding
    try:
        sock = _BoundedBannerSocket.adopt(
            socket.create_connection((ip, port), timeout=deadline.cap(deadline.remaining()))
        )
    except TimeoutError:
        return _failed(port, evidence, "connect-timeout", "connection timed out", "connect")
    except OSError as exc:
        return _failed(port, evidence, "connect-failed", f"cannot connect: {exc.strerror or exc}", "connect")
    # The server's log names the client's port ("from IP port N"): this ties its lines to this very login.
    evidence["local_port"] = sock.getsockname()[1]
    # paramiko's own timeouts cover single waits; shutting the socket down bounds the whole exchange.
    watchdog = threading.Timer(deadline.remaining(), _shutdown, args=(sock,))
    watchdog.start()
    transport = paramiko.Transport(sock)
    login = _RootLogin(sock, transport, target, credentials, key, lookup, deadline, evidence)
    try:
        return login.run()
    except _Stop as stop:
        return stop.finding
    except (paramiko.SSHException, EOFError, OSError) as exc:
        return login.broken(exc)
    finally:
        watchdog.cancel()
        transport.close()
        sock.close()


class _RootLogin:
    """One login attempt as root: handshake, host key, authentication, `id -u`."""

    def __init__(
        self,
        sock: _BoundedBannerSocket,
        transport: paramiko.Transport,
        target: Target,
        credentials: Credentials,
        key: paramiko.PKey | None,
        lookup: _KnownHostsLookup | None,
        deadline: Deadline,
        evidence: dict[str, Any],
    ) -> None:
        self.sock = sock
        self.transport = transport
        self.lookup = lookup
        self.target = target
        self.port = target.port or 0
        self.credentials = credentials
        self.key = key
        self.deadline = deadline
        self.evidence = evidence
        self.stage = "banner exchange"
        self.prompts: list[str] = []

    def run(self) -> Finding:
        if self.lookup is not None:
            self._prefer_known_key_types(self.lookup.known_types)
        self._handshake()
        server_key = self.transport.get_remote_server_key()
        self.evidence["host_key_type"] = server_key.get_name()
        self.evidence["host_key_fingerprint"] = fingerprint(server_key)
        self.stage = "host key check"
        if self.lookup is None:
            self._check_pin()
        else:
            self._check_known_hosts(self.lookup, server_key)
        self.stage = "authentication"
        self._authenticate()
        self.stage = "command"
        return self._confirm_uid()

    def broken(self, exc: BaseException) -> Finding:
        """The finding for an exchange that broke off: the deadline, or whatever the server did."""
        stage = self.stage
        refused = self.sock.refused
        if refused is not None:
            return _failed(
                self.port,
                self.evidence | {"heard": _shown(refused.heard.decode("latin-1")), "banner_bytes_read": refused.read},
                refused.outcome,
                f"SSH {stage} failed: {refused.problem}",
                stage,
                f"An SSH server sends its version line at once, and no more than {BANNER_LINE_LIMIT} bytes before "
                f"it. Check the port forward: TCP {self.port} must reach the system's own SSH server (OpenSSH), not "
                "a tarpit, honeypot or another service.",
            )
        if self.transport.remote_version:
            self.evidence["banner"] = _version_shown(self.transport.remote_version)
            if stage == "banner exchange":
                stage = "key exchange"
        if self._out_of_time():
            return self._timed_out(stage)
        if isinstance(exc, ConnectionResetError):
            return _failed(
                self.port,
                self.evidence,
                "connection-reset",
                f"SSH {stage} failed: the server reset the connection (TCP RST)",
                stage,
            )
        return _failed(self.port, self.evidence, "ssh-error", f"SSH {stage} failed: {_describe(exc)}", stage)

    def _prefer_known_key_types(self, known_types: frozenset[str]) -> None:
        # As OpenSSH does: ask for a key type already on file, so a server with several keys shows the known one.
        options = self.transport.get_security_options()
        offered = list(options.key_types)
        known = [algorithm for algorithm in offered if _key_type_of(algorithm) in known_types]
        options.key_types = known + [algorithm for algorithm in offered if algorithm not in known]

    def _handshake(self) -> None:
        remaining = self.deadline.cap(self.deadline.remaining())
        self.transport.banner_timeout = remaining
        self.transport.handshake_timeout = remaining
        self.transport.auth_timeout = remaining
        self.transport.start_client(timeout=remaining)
        self.evidence["banner"] = _version_shown(self.transport.remote_version)
        if not self.transport.is_active() or not self.transport.initial_kex_done:
            # start_client returns without an exception when its own timeout ends the wait.
            raise paramiko.SSHException("no key exchange within the deadline")

    def _check_pin(self) -> None:
        pinned = self.target.host.ssh.host_key
        presented = self.evidence["host_key_fingerprint"]
        if pinned == presented:
            self.evidence["host_key_check"] = "matches the inventory pin"
            return
        self.evidence["host_key_check"] = "does not match the inventory pin"
        raise _Stop(
            _finding(
                Status.FAIL,
                "host-key-pin-mismatch",
                f"host key does not match the pinned key; the password was not sent (SSH port {self.port})",
                self.evidence,
                f"The server on TCP {self.port} presented {presented}, not the pinned {pinned}. If the system was "
                "reinstalled, update ssh.host_key in the inventory; otherwise something is intercepting the "
                "connection.",
            )
        )

    def _check_known_hosts(self, lookup: _KnownHostsLookup, server_key: paramiko.PKey) -> None:
        store, name = lookup.store, lookup.name
        key_type, blob, presented = server_key.get_name(), server_key.asbytes(), self.evidence["host_key_fingerprint"]
        strict = self.target.options.strict_host_keys
        try:
            verdict = store.verify(name, key_type, blob, record=not strict)
        except OSError as exc:
            raise _Stop(_known_hosts_unreadable(self.port, store.path, self.evidence, exc)) from None
        line = known_hosts.entry_line(name, key_type, blob)
        if verdict.state is known_hosts.HostKeyState.KNOWN:
            self.evidence["host_key_check"] = "matches known_hosts"
        elif verdict.state is known_hosts.HostKeyState.RECORDED:
            self.evidence["host_key_check"] = "recorded on first contact"
        elif verdict.state in (known_hosts.HostKeyState.CHANGED, known_hosts.HostKeyState.REVOKED):
            self._refuse_changed_key(store, name, verdict, presented)
        elif strict:
            self.evidence["host_key_check"] = "unknown"
            self.evidence["known_hosts_line"] = line
            raise _Stop(
                _finding(
                    Status.FAIL,
                    "host-key-unknown",
                    f"host key of SSH port {self.port} is not yet known and --strict-host-keys is set; "
                    "the password was not sent",
                    self.evidence,
                    f"Confirm with the system's administrator that its key is {presented} (on the system: "
                    f"ssh-keygen -lf /etc/ssh/ssh_host_{_HOST_KEY_FILES.get(key_type, 'ecdsa')}_key.pub). Then "
                    f"accept it: pin it in the inventory as ssh.host_key: {presented}, or add this line to "
                    f"{store.path}: {line}",
                )
            )
        else:
            # OpenSSH's accept-new goes on when the key cannot be saved; so does preflight, and says so.
            self.evidence["host_key_check"] = f"new, not recorded: {verdict.not_recorded}"

    def _refuse_changed_key(
        self, store: known_hosts.KnownHostsFile, name: str, verdict: known_hosts.HostKeyVerdict, presented: str
    ) -> None:
        revoked = verdict.state is known_hosts.HostKeyState.REVOKED
        self.evidence["host_key_check"] = "revoked" if revoked else "changed"
        self.evidence["known_host_key_fingerprints"] = list(verdict.known_fingerprints)
        what = "host key is marked @revoked" if revoked else "host key changed, possible interception"
        raise _Stop(
            _finding(
                Status.FAIL,
                "host-key-revoked" if revoked else "host-key-changed",
                f"{what}: SSH port {self.port} presented {presented}, not the key recorded for {name}; "
                "the password was not sent",
                self.evidence,
                "Treat this as an attack until you know otherwise: something may be answering in the system's "
                "place. If the system was reinstalled or its SSH keys regenerated, confirm the new fingerprint "
                f"{presented} with its administrator over another channel, then remove the old key with "
                f"ssh-keygen -R '{name}' -f {store.path} and run preflight again (or pin ssh.host_key: {presented} "
                "in the inventory).",
            )
        )

    def _authenticate(self) -> None:
        offered = self._methods_offered()
        if offered is None:
            self.evidence["auth_method"] = "none"
            return
        tried: set[str] = set()
        for _ in range(_MAX_AUTH_STEPS):
            method = self._next_method(offered, tried)
            if method is None:
                raise _Stop(self._method_not_offered(offered))
            tried.add(method)
            self.evidence["auth_method"] = method
            next_offered = self._try(method)
            if self.transport.is_authenticated():
                return
            if next_offered is not None:
                # Partial success: the server wants another method as well.
                offered = next_offered
                self.evidence["auth_methods_offered"] = list(offered)
        raise _Stop(self._method_not_offered(offered))

    def _methods_offered(self) -> list[str] | None:
        """The methods the server allows root (from `auth_none`); None when it lets root in without any."""
        self.transport.auth_timeout = self.deadline.cap(self.deadline.remaining())
        try:
            self.transport.auth_none(ROOT)
        except paramiko.BadAuthenticationType as exc:
            self.evidence["auth_methods_offered"] = list(exc.allowed_types)
            return list(exc.allowed_types)
        except paramiko.AuthenticationException as exc:
            raise self._auth_broke_off(exc) from None
        return None if self.transport.is_authenticated() else []

    def _next_method(self, offered: Sequence[str], tried: set[str]) -> str | None:
        wanted = []
        if self.key is not None:
            wanted.append("publickey")
        if self.credentials.root_password is not None:
            # A refused password is final: trying it again by keyboard-interactive only adds a failed login.
            wanted += ["password"] if "password" in offered else ["keyboard-interactive"]
        return next((method for method in wanted if method in offered and method not in tried), None)

    def _try(self, method: str) -> list[str] | None:
        """Authenticate with `method`; the methods still wanted after a partial success, else None."""
        self.transport.auth_timeout = self.deadline.cap(self.deadline.remaining())
        try:
            if method == "publickey" and self.key is not None:
                remaining = self.transport.auth_publickey(ROOT, self.key)
            elif method == "password":
                remaining = self.transport.auth_password(ROOT, self._password(), fallback=False)
            else:
                remaining = self.transport.auth_interactive(ROOT, self._prompt_handler())
        except _PromptDeclined as declined:
            raise _Stop(self._prompt_finding(declined)) from None
        except paramiko.AuthenticationException as exc:
            if self._out_of_time() or not self.transport.is_active():
                raise self._auth_broke_off(exc) from None
            if method == "publickey" and self.credentials.root_password is not None:
                return None
            raise _Stop(self._refused(method)) from None
        return list(remaining) if remaining else None

    def _password(self) -> str:
        password = self.credentials.root_password
        return password.get_secret_value() if password is not None else ""

    def _prompt_handler(self) -> Callable[[str, str, list[tuple[str, bool]]], list[str]]:
        answered: list[str] = []

        def answer(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
            texts = [prompt for prompt, _echo in prompts]
            self.prompts += texts
            self.evidence["prompts"] = [_shown(text) for text in self.prompts]
            for text in texts:
                if _PASSWORD_WORD.search(text) and _PASSWORD_CHANGE_WORDS.search(text):
                    raise _PromptDeclined("password-change-required", text)
                if not is_password_prompt(text):
                    raise _PromptDeclined("one-time-code-required", text)
            if answered and texts:
                # A second password prompt means the first answer was refused; one attempt is enough.
                raise _PromptDeclined("password-refused", texts[0])
            answered.extend(texts)
            return [self._password() for _ in texts]

        return answer

    def _confirm_uid(self) -> Finding:
        uid, complete = self._run_command(UID_COMMAND)
        if not complete:
            self.evidence["uid"] = _shown(uid)
            self.evidence["output_bytes_read"] = _OUTPUT_LIMIT
            return _finding(
                Status.FAIL,
                "uid-output-too-long",
                f"logged in on SSH port {self.port}, but `id -u` printed at least {_OUTPUT_LIMIT} bytes "
                f"(starting {_shown(uid)[:40]!r}), not just a uid: preflight read no further",
                self.evidence,
                f"Something on the system adds output to every command run over SSH on TCP {self.port}: check root's "
                "shell startup files (~/.bashrc, /etc/profile), a ForceCommand in sshd_config, or a wrapper shell.",
            )
        self.evidence["uid"] = int(uid) if uid.isdigit() and len(uid) <= _UID_DIGITS else _shown(uid)
        if uid == "0":
            return _finding(
                Status.PASS, "root-login", f"root login works on SSH port {self.port} (uid 0)", self.evidence
            )
        return _finding(
            Status.FAIL,
            "not-root",
            f"logged in on SSH port {self.port}, but `id -u` printed {_shown(uid)!r}, not 0: the login does not "
            "get root's rights",
            self.evidence,
            f"The account support logs in to on TCP {self.port} must be root (uid 0). Check that the SSH server does "
            "not map root to another user or run its sessions in a restricted shell (ForceCommand, a jail).",
        )

    def _run_command(self, command: str) -> tuple[str, bool]:
        """What `command` printed (at most _OUTPUT_LIMIT bytes), and whether that was all of it."""
        self.stage = "session open"
        channel = self.transport.open_session(timeout=self.deadline.cap(self.deadline.remaining()))
        self.stage = "command"
        channel.settimeout(self.deadline.cap(self.deadline.remaining()))
        # paramiko waits for the exec request's reply without a timeout; the watchdog's shutdown ends that wait.
        channel.exec_command(command)
        output = b""
        complete = False
        while len(output) < _OUTPUT_LIMIT and not self.deadline.expired:
            # Never more than the limit: a server that floods the channel costs one bounded read, then the close.
            chunk = channel.recv(_OUTPUT_LIMIT - len(output))
            if not chunk:
                complete = True
                break
            output += chunk
        channel.close()
        if not complete and self._out_of_time():
            raise paramiko.SSHException("the command did not finish within the deadline")
        return output.decode(errors="replace").strip(), complete

    def _out_of_time(self) -> bool:
        return self.deadline.remaining() <= _DEADLINE_SLACK_SECONDS

    def _auth_broke_off(self, exc: BaseException) -> _Stop:
        if self._out_of_time():
            return _Stop(self._timed_out("authentication"))
        return _Stop(
            _failed(
                self.port, self.evidence, "ssh-error", f"SSH authentication failed: {_describe(exc)}", "authentication"
            )
        )

    def _timed_out(self, stage: str) -> Finding:
        seconds = self.deadline.seconds
        if stage == "banner exchange":
            return _failed(
                self.port,
                self.evidence,
                "banner-timeout",
                f"no answer within the deadline during banner exchange: the port accepted the connection but sent "
                f"no SSH banner within {seconds:g} s",
                stage,
            )
        if stage in ("session open", "command"):
            what = "open a session" if stage == "session open" else f"answer `{UID_COMMAND}`"
            return _failed(
                self.port,
                self.evidence,
                f"{stage.replace(' ', '-')}-timeout",
                f"root's login was accepted, but the SSH server did not {what} within the deadline ({seconds:g} s)",
                stage,
                f"The SSH server on TCP {self.port} lets root in but hangs afterwards. Check the system's load and "
                "what runs when a session starts: PAM session modules, root's shell and its startup files, a "
                "ForceCommand in sshd_config.",
            )
        if stage == "authentication":
            return _failed(
                self.port,
                self.evidence,
                "auth-timeout",
                f"no answer within the deadline during authentication: the SSH server stopped answering while "
                f"checking the root login ({seconds:g} s)",
                stage,
                "Check the SSH server's authentication back end on the system (PAM, LDAP or RADIUS, DNS lookups "
                "with UseDNS): it must answer a login within seconds.",
            )
        return _failed(
            self.port,
            self.evidence,
            f"{stage.replace(' ', '-')}-timeout",
            f"no answer within the deadline during {stage} ({seconds:g} s)",
            stage,
        )

    def _method_not_offered(self, offered: Sequence[str]) -> Finding:
        listed = ", ".join(offered) or "none"
        if self.credentials.root_password is not None:
            return _finding(
                Status.FAIL,
                "password-auth-disabled",
                f"SSH port {self.port} does not accept a password for root (it offers: {listed})",
                self.evidence,
                f"Enable password login for root on TCP {self.port}: set 'PasswordAuthentication yes' (or "
                "'KbdInteractiveAuthentication yes') and 'PermitRootLogin yes' in /etc/ssh/sshd_config, then "
                "restart sshd.",
            )
        return _finding(
            Status.FAIL,
            "publickey-auth-disabled",
            f"SSH port {self.port} does not accept a key for root (it offers: {listed})",
            self.evidence,
            f"Enable key login for root on TCP {self.port}: set 'PubkeyAuthentication yes' and 'PermitRootLogin "
            "prohibit-password' (or yes) in /etc/ssh/sshd_config, then restart sshd; or give support the root "
            "password instead.",
        )

    def _refused(self, method: str) -> Finding:
        if method == "publickey" and "certificate" in self.evidence:
            return self._certificate_refused()
        if method == "publickey":
            return _finding(
                Status.FAIL,
                "key-refused",
                f"root key refused on SSH port {self.port}: the key is not authorized for root, or root may not "
                "log in over SSH (SSH does not say which)",
                self.evidence,
                f"Add the public key to /root/.ssh/authorized_keys on the system and make sure sshd_config has "
                f"'PermitRootLogin prohibit-password' or 'yes' for TCP {self.port}.",
            )
        return _finding(
            Status.FAIL,
            "password-refused",
            f"root password refused on SSH port {self.port}: either the password is wrong or root may not log in "
            "with a password (PermitRootLogin); SSH answers both the same way, so preflight cannot tell which",
            self.evidence,
            f"Check the root password for TCP {self.port} in the inventory (ssh.root_password, or ssh.per_port). "
            "If it is right, allow root to log in with a password: 'PermitRootLogin yes' in /etc/ssh/sshd_config, "
            "then restart sshd.",
        )

    def _certificate_refused(self) -> Finding:
        certificate = self.evidence["certificate"]
        principals = certificate["principals"]
        if principals and ROOT not in principals:
            return _finding(
                Status.FAIL,
                "certificate-refused",
                f"root certificate refused on SSH port {self.port}: its principals ({', '.join(principals)}) do not "
                "include root",
                self.evidence,
                f"Have your CA sign a certificate that names root among its principals (ssh-keygen -s CA_KEY -I ID "
                f"-n root ...), or let these principals log in as root on TCP {self.port} with an "
                "AuthorizedPrincipalsFile in sshd_config.",
            )
        return _finding(
            Status.FAIL,
            "certificate-refused",
            f"root certificate refused on SSH port {self.port}: the server does not trust the certificate's CA "
            f"({certificate['signed_by']}), or root may not log in with a key (SSH does not say which)",
            self.evidence,
            f"On the system, add the CA's public key to the file that TrustedUserCAKeys names in sshd_config, and set "
            f"'PermitRootLogin prohibit-password' (or yes) for TCP {self.port}; then restart sshd. Its log says why "
            "a certificate is refused.",
        )

    def _prompt_finding(self, declined: _PromptDeclined) -> Finding:
        self.evidence["declined_prompt"] = _shown(declined.prompt)
        if declined.outcome == "password-refused":
            return self._refused("keyboard-interactive")
        if declined.outcome == "password-change-required":
            return _finding(
                Status.FAIL,
                "password-change-required",
                f"root's password on SSH port {self.port} has expired: the server asks for a new one "
                f"({_shown(declined.prompt)!r}); preflight does not change passwords",
                self.evidence,
                "Log in as root on the system once and set a new password (passwd), then put it in the inventory.",
            )
        return _finding(
            Status.FAIL,
            "one-time-code-required",
            f"the account requires a one-time code: SSH port {self.port} asks {_shown(declined.prompt)!r} "
            "(two-factor authentication); the password was not sent to that prompt",
            self.evidence,
            f"Support logs in with the root password alone. For the support session, exempt root on TCP {self.port} "
            "from the second factor (for example a 'Match' block in sshd_config, or a PAM rule for support's "
            "address), or arrange with support how the code will be given.",
        )


@dataclass(frozen=True, slots=True)
class _KnownHostsLookup:
    store: known_hosts.KnownHostsFile
    name: str
    known_types: frozenset[str]


def _look_up_known_hosts(target: Target, evidence: dict[str, Any]) -> _KnownHostsLookup:
    """The host's entry name in the known_hosts file, and the key types the file already holds for it."""
    path = target.options.known_hosts or known_hosts.default_path()
    evidence["known_hosts"] = str(path)
    store = known_hosts.known_hosts_file(path)
    name = known_hosts.entry_name(target.host.address, target.port or 0)
    try:
        return _KnownHostsLookup(store, name, store.known_key_types(name))
    except OSError as exc:
        raise _Stop(_known_hosts_unreadable(target.port or 0, path, evidence, exc)) from None


def _known_hosts_unreadable(port: int, path: Path, evidence: dict[str, Any], exc: OSError) -> Finding:
    evidence["host_key_check"] = "known_hosts unreadable"
    return _finding(
        Status.FAIL,
        "known-hosts-unreadable",
        f"cannot read the known_hosts file ({exc.strerror or exc}), so the host key cannot be checked; "
        f"the password was not sent (SSH port {port})",
        evidence,
        f"Make {path} a file readable by the user that runs preflight, or choose another file with --known-hosts.",
    )


def _load_key(path: Path, passphrase: SecretStr | None, port: int | None) -> paramiko.PKey:
    secret = passphrase.get_secret_value().encode() if passphrase else None
    try:
        # Positional: paramiko 3 names this argument `passphrase`, paramiko 5 `password`; both decrypt with bytes.
        return paramiko.PKey.from_path(path, cast(str | None, secret))
    except paramiko.PasswordRequiredException:
        problem = "is encrypted and the inventory gives no key_passphrase"
    except (paramiko.SSHException, ValueError):
        problem = "could not be decrypted (wrong key_passphrase?) or is not a private key paramiko can read"
    except OSError as exc:
        problem = f"could not be read ({exc.strerror})"
    raise _Stop(
        _finding(
            Status.FAIL,
            "key-file-unusable",
            f"the key file for SSH port {port} {problem}",
            {"port": port, "key_file": str(path)},
            f"Check ssh.key_file and ssh.key_passphrase in the inventory (SSH on TCP {port}): the key must be an "
            "OpenSSH or PEM private key (RSA, ECDSA or Ed25519) that root accepts.",
        )
    )


def _attach_certificate(key: paramiko.PKey, path: Path, port: int, evidence: dict[str, Any]) -> None:
    """Load the user certificate onto `key`, so that it is what gets offered; stop if it cannot work now."""
    evidence["certificate_file"] = str(path)
    try:
        certificate = read_user_certificate(path)
        if certificate.public_key_blob != key.asbytes():
            raise ValueError("it certifies another key than ssh.key_file")
        key.load_certificate(str(path))
    except (ValueError, OSError, paramiko.SSHException) as exc:
        raise _Stop(
            _finding(
                Status.FAIL,
                "certificate-unusable",
                f"the SSH certificate for SSH port {port} cannot be used: {_describe(exc)}; nothing was sent",
                evidence,
                f"Set ssh.certificate_file (SSH on TCP {port}) to the OpenSSH user certificate that your CA signed for "
                "ssh.key_file's public key (ssh-keygen -s CA_KEY -I ID -n root KEY.pub writes KEY-cert.pub).",
            )
        ) from None
    now = datetime.now(UTC)
    evidence["certificate"] = certificate.evidence(now)
    problem = certificate.problem_at(now)
    if problem is None:
        return
    shown = evidence["certificate"]
    span = f"valid from {shown['valid_after']} to {shown['valid_before']}"
    when = (
        f"expired on {shown['valid_before']}" if problem == "expired" else f"is not valid until {shown['valid_after']}"
    )
    raise _Stop(
        _finding(
            Status.FAIL,
            f"certificate-{problem}",
            f"the SSH certificate for root {when} ({span}; now {now.strftime(TIME_FORMAT)}); nothing was sent "
            f"(SSH port {port})",
            evidence,
            f"Have your CA sign a new certificate for root's key, valid now (ssh-keygen -s CA_KEY -I ID -n root -V "
            f"+4w KEY.pub), and set ssh.certificate_file to it (SSH on TCP {port}). If its dates are right, this "
            "machine's clock is wrong: set it.",
        )
    )


def _key_type_of(algorithm: str) -> str:
    """The key type a host-key algorithm name stands for, as known_hosts writes it."""
    return "ssh-rsa" if algorithm.startswith("rsa-sha2-") else algorithm


def _finding(status: Status, outcome: str, summary: str, evidence: dict[str, Any], remediation: str = "") -> Finding:
    evidence["outcome"] = outcome
    return Finding(status, summary, evidence, remediation)


def _failed(
    port: int, evidence: dict[str, Any], outcome: str, reason: str, stage: str, remediation: str = ""
) -> Finding:
    evidence["failed_at"] = stage
    return _finding(
        Status.FAIL,
        outcome,
        f"SSH port {port}: {reason}",
        evidence,
        remediation
        or f"Make sure TCP {port} is forwarded to the system's SSH server (OpenSSH), and that nothing between "
        "support and the system intercepts or slows the connection.",
    )


def _describe(exc: BaseException) -> str:
    return _shown(str(exc) or type(exc).__name__)


def _shown(text: str) -> str:
    """Server-chosen text, cut to a length a report can show."""
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_LIMIT else text[: _SHOWN_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class _BannerRefused:
    outcome: str
    problem: str
    heard: bytes
    read: int


class _BoundedBannerSocket(socket.socket):
    """The connection as paramiko reads it, with what may come before the server's version line bounded.

    paramiko reads the text lines before the version line, and the version line itself, without any bound on their
    length: a server that sends an endless line would be read until the deadline, into memory. The same limits as
    service/<port> apply here; past them the read fails and `refused` says why.
    """

    def __init__(self, family: int, kind: int, proto: int, fileno: int) -> None:
        super().__init__(family, kind, proto, fileno)
        self.refused: _BannerRefused | None = None
        self._line = b""  # the line being read, up to one byte past the limit
        self._read = 0
        self._done = False

    @classmethod
    def adopt(cls, sock: socket.socket) -> _BoundedBannerSocket:
        """`sock`'s connection, now read through the bound (`sock` itself is detached)."""
        timeout = sock.gettimeout()
        adopted = cls(sock.family, sock.type, sock.proto, sock.detach())
        adopted.settimeout(timeout)
        return adopted

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        if not self._done and data:
            self._watch(data)
        return data

    def _watch(self, data: bytes) -> None:
        start = 0
        while not self._done:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start : end + 1]
            self._line += piece[: BANNER_LINE_LIMIT + 1 - len(self._line)]
            self._read += len(piece)
            self._check()
            if end < 0:
                return
            self._done = self._line.startswith(b"SSH-")
            self._line = b""
            start = end + 1

    def _check(self) -> None:
        """Raise inside paramiko's banner read once the line or the bytes before the version line are too many."""
        line = self._line.rstrip(b"\r\n")
        if len(line) > BANNER_LINE_LIMIT and line.startswith(b"SSH-"):
            self.refused = _BannerRefused(
                "version-line-too-long",
                f"the server's version line is longer than {BANNER_LINE_LIMIT} bytes (RFC 4253 allows 255)",
                line,
                self._read,
            )
        elif len(line) > BANNER_LINE_LIMIT:
            self.refused = _BannerRefused(
                "banner-flood",
                f"a line longer than {BANNER_LINE_LIMIT} bytes before the SSH version line",
                line,
                self._read,
            )
        elif self._read > BANNER_BYTES_LIMIT:
            self.refused = _BannerRefused(
                "banner-flood",
                f"no SSH version line within the first {BANNER_BYTES_LIMIT} bytes (a flood of text before it)",
                line,
                self._read,
            )
        if self.refused is not None:
            raise OSError(self.refused.problem)


def _version_shown(version: str) -> str:
    """The server's version line as evidence: RFC 4253 allows it 255 characters, and no more are kept."""
    return version if len(version) <= 255 else version[:254] + "…"


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
