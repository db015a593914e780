"""Accepts and closes connections on the given ports, in a bench namespace; deep backlogs so no SYN is dropped."""

from __future__ import annotations

import selectors
import socket
import sys
import time


def main(lifetime: float, ports: list[int]) -> None:
    selector = selectors.DefaultSelector()
    for port in ports:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))  # noqa: S104 - inside the bench's own network namespace
        server.listen(65535)
        server.setblocking(False)
        selector.register(server, selectors.EVENT_READ)
    print("ready", flush=True)
    stop_at = time.monotonic() + lifetime
    while time.monotonic() < stop_at:
        for key, _ in selector.select(timeout=1.0):
            server = key.fileobj
            assert isinstance(server, socket.socket)
            for _ in range(10_000):
                try:
                    connection, _ = server.accept()
                except BlockingIOError:
                    break
                connection.close()


if __name__ == "__main__":
    main(float(sys.argv[1]), [int(port) for port in sys.argv[2:]])
