"""Lab tarpit: accepts TCP connections on the given ports and never sends a byte.

Connections are held open (the oldest are dropped beyond a bound), so a client waits for an answer that never comes.
Standard library only, because the lab image has no pip.
"""

import socket
import sys
import threading
from collections import deque

HELD_CONNECTIONS = 256


def hold(port: int) -> None:
    server = socket.create_server(("0.0.0.0", port), backlog=4096)
    held: deque[socket.socket] = deque()
    while True:
        connection, _ = server.accept()
        held.append(connection)
        if len(held) > HELD_CONNECTIONS:
            held.popleft().close()


def main() -> None:
    ports = [int(port) for port in sys.argv[1:]]
    threads = [threading.Thread(target=hold, args=(port,), daemon=True) for port in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
