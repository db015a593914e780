"""`preflight serve` as a real process on loopback, for the service's tests: started, waited for, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

START_SECONDS = 30.0
ENGINEER_PASSWORD = "engineer-pass-1234"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def preflight(*args: str, state: Path, stdin: str = "", db: str = "", prefix: Sequence[str] = ()) -> str:
    """Run a `preflight` service command to completion; its stdout."""
    extra = ["--db", db] if db else []
    completed = subprocess.run(
        [*prefix, sys.executable, "-m", "preflight", *args, "--state", str(state), *extra],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    return completed.stdout


@dataclass
class ServiceProcess:
    """A running `preflight serve`, with an API token and an engineer's account made for the test."""

    state: Path
    port: int
    args: list[str]
    db: str = ""
    prefix: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None
    token: str = ""
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.state / "service.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        extra = ["--db", self.db] if self.db else []
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "preflight", "serve", "--listen", f"127.0.0.1:{self.port}",
                 "--state", str(self.state), "--log-level", "debug", *extra, *self.args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        give_up = time.monotonic() + START_SECONDS
        while time.monotonic() < give_up:
            assert self.process.poll() is None, f"preflight serve exited: {self.log()}"
            with contextlib.suppress(OSError):
                if self.get("/healthz").status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"preflight serve did not answer within {START_SECONDS}s: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post_check(self, body: Any, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}", **kwargs.pop("headers", {})}
        if not isinstance(body, (dict, list)):
            return requests.post(self.url + "/api/v1/checks", data=body, headers=headers, timeout=30, **kwargs)
        return requests.post(self.url + "/api/v1/checks", json=body, headers=headers, timeout=30, **kwargs)

    def wait_done(self, check_id: str, seconds: float = 120.0) -> dict[str, Any]:
        give_up = time.monotonic() + seconds
        while time.monotonic() < give_up:
            answer = self.get(f"/api/v1/checks/{check_id}")
            assert answer.status_code == 200, answer.text
            state: dict[str, Any] = answer.json()
            if state["state"] in ("done", "failed"):
                return state
            time.sleep(0.3)
        raise AssertionError(f"check {check_id} did not end within {seconds}s")

    def probed(self) -> list[str]:
        """The addresses the service recorded starting a probe of, read from its own database."""
        from sqlalchemy import create_engine, text

        from preflight.service.store import engine_url

        url = self.db or f"sqlite:///{self.state / 'service.db'}"
        engine = create_engine(engine_url(url))
        try:
            with engine.connect() as connection:
                return [row[0] for row in connection.execute(text("SELECT address FROM probes ORDER BY id"))]
        finally:
            engine.dispose()


@contextlib.contextmanager
def running_service(
    state: Path, args: Sequence[str] = (), db: str = "", prefix: Sequence[str] = (), port: int | None = None
) -> Iterator[ServiceProcess]:
    """A started service with a token and an engineer `alice`; stopped (and its log checked) afterwards."""
    preflight("users", "add", "alice", state=state, stdin=ENGINEER_PASSWORD + "\n", db=db, prefix=prefix)
    token = preflight("tokens", "add", "tests", state=state, db=db, prefix=prefix).strip()
    service = ServiceProcess(state=state, port=port or free_port(), args=list(args), db=db, prefix=prefix)
    service.token = token
    service.start()
    try:
        yield service
    finally:
        service.stop()
        assert "Traceback" not in service.log(), service.log()


def host(address: str, *, name: str = "pbx", product: str = "pbxware", gui_password: str = "",
         root_password: str = "", **extra: Any) -> dict[str, Any]:
    """One inventory host in the API's shape."""
    entry: dict[str, Any] = {"name": name, "product": product, "address": address, **extra}
    if gui_password:
        entry["gui"] = {"username": "admin", "password": gui_password}
    if root_password:
        entry["ssh"] = {"root_password": root_password}
    return entry


@contextlib.contextmanager
def silent_listener(address: str, port: int) -> Iterator[None]:
    """A TCP port that accepts and never says a word: a check of it runs to its deadline (a silent sshd)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for connection in held:
            connection.close()
