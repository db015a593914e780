"""A private Redis and `preflight worker` processes, for the tests of checks on the queue."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.requirements import need_tool
from tests.service_process import ServiceProcess, free_port

START_SECONDS = 30.0


def require_redis() -> str:
    return need_tool("redis-server", "redis-server")


@dataclass
class RedisServer:
    """redis-server on a free port, with a password, an append-only file and a folder of its own."""

    folder: Path
    bind: Sequence[str] = ("127.0.0.1",)
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: "redis-" + secrets.token_urlsafe(12))
    process: subprocess.Popen[bytes] | None = None

    def url(self, host: str = "127.0.0.1") -> str:
        return f"redis://:{self.password}@{host}:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [require_redis(), "--port", str(self.port), "--bind", *self.bind, "--requirepass", self.password,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--dir", str(self.folder),
             "--daemonize", "no", "--protected-mode", "no", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        give_up = time.monotonic() + START_SECONDS
        while time.monotonic() < give_up:
            if self.cli("ping").strip() == "PONG":
                return
            time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def cli(self, *args: str) -> str:
        completed = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True,
                                   timeout=30, env={**os.environ, "REDISCLI_AUTH": self.password}, check=False)
        return completed.stdout

    def stop(self) -> None:
        """Shut down as an operator would: the append-only file is written, and read again at the next start."""
        if self.process is None:
            return
        self.cli("shutdown")
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def files(self) -> list[Path]:
        """Everything Redis keeps on disk: the SAVE dump and the append-only files."""
        return [path for path in self.folder.rglob("*") if path.is_file() and path.suffix != ".log"]


@contextlib.contextmanager
def redis_server(folder: Path, bind: Sequence[str] = ("127.0.0.1",)) -> Iterator[RedisServer]:
    server = RedisServer(folder, bind)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class WorkerProcess:
    vantage: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """As a machine that dies: SIGKILL, no goodbye to the broker."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def workers(specs: Sequence[tuple[str, Sequence[str], Sequence[str]]], queue: str, state: Path,
            common: Sequence[str] = (), broker_outage: bool = False) -> Iterator[list[WorkerProcess]]:
    """`preflight worker` processes: (vantage, extra arguments, command prefix such as `ip netns exec NS`)."""
    started: list[WorkerProcess] = []
    try:
        for number, (vantage, extra, prefix) in enumerate(specs):
            log_path = state / f"worker-{vantage}-{number}.log"
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    [*prefix, sys.executable, "-m", "preflight", "worker", "--queue", queue, "--vantage", vantage,
                     "--state", str(state), "--log-level", "debug", *common, *extra],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            started.append(WorkerProcess(vantage, log_path, process))
        yield started
    finally:
        for worker in started:
            worker.stop()
        for worker in started:
            # Celery logs the broker's disappearance with its traceback; anything else would be our bug.
            if not broker_outage:
                assert "Traceback" not in worker.log(), worker.log()


def wait_for_vantages(service: ServiceProcess, names: set[str], seconds: float = 60.0) -> None:
    give_up = time.monotonic() + seconds
    live: set[str] = set()
    while time.monotonic() < give_up:
        live = set(service.get("/api/v1/vantages").json()["vantages"])
        if names <= live:
            return
        time.sleep(0.5)
    raise AssertionError(f"vantages {sorted(names)} not live within {seconds}s (live: {sorted(live)})")
