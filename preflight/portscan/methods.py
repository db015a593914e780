"""The scan methods a user may choose and whether raw SYNs are allowed, apart from the scanner itself.

The command line offers and checks these before any scan, so they must not load the engines.
"""

from __future__ import annotations

import socket

METHODS = ("auto", "syn", "connect")


def raw_sockets_allowed() -> bool:
    """Whether this process may send raw packets (root, or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
    except PermissionError:
        return False
    return True
