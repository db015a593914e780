"""The baseline: N root logins with bare paramiko in a ThreadPoolExecutor, each running `id -u`.

The same work as one preflight ssh-root check, without preflight: connect, handshake, password, `id -u`.
Usage: ROOT_PASSWORD=... python -m bench.paramiko_loop IP PORT COUNT WORKERS
"""

from __future__ import annotations

import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import paramiko


def login(ip: str, port: int, password: str) -> bool:
    try:
        return _login(ip, port, password)
    except (OSError, paramiko.SSHException):
        return False


def _login(ip: str, port: int, password: str) -> bool:
    with socket.create_connection((ip, port), timeout=30) as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=30)
            transport.auth_password("root", password)
            channel = transport.open_session(timeout=30)
            channel.exec_command("id -u")
            return channel.makefile().read().strip() == b"0"
        finally:
            transport.close()


def main() -> int:
    ip, port, count, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    password = os.environ["ROOT_PASSWORD"]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda _: login(ip, port, password), range(count)))
    print(f"{sum(results)} of {count} logins confirmed uid 0")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
