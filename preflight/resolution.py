"""Turns a host's address into IP addresses, and finds which local address reaches each."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from dataclasses import dataclass

from preflight.deadline import Deadline

_resolver_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")


@dataclass(frozen=True, slots=True)
class Resolution:
    addresses: tuple[str, ...]
    error: str = ""

    @property
    def ip(self) -> str | None:
        """The address probes use: the first IPv4 address, else the first IPv6 one."""
        ordered = sorted(self.addresses, key=lambda address: ipaddress.ip_address(address).version)
        return ordered[0] if ordered else None


def resolve(address: str, deadline: Deadline) -> Resolution:
    """Every A and AAAA address of `address` (an IP literal resolves to itself)."""
    try:
        return Resolution((str(ipaddress.ip_address(address)),))
    except ValueError:
        pass
    future = _resolver_pool.submit(socket.getaddrinfo, address, None, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=deadline.remaining())
    except concurrent.futures.TimeoutError:
        return Resolution((), f"DNS lookup of {address} timed out")
    except socket.gaierror as exc:
        return Resolution((), f"{address} does not resolve ({exc.strerror})")
    except (OSError, UnicodeError) as exc:
        return Resolution((), f"{address} could not be looked up ({type(exc).__name__})")
    unique = dict.fromkeys(str(info[4][0]) for info in infos)
    return Resolution(tuple(unique))


def source_address(ip: str) -> str | None:
    """The local address the kernel would use to reach `ip`; a UDP connect sends no packet."""
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((ip, 9))
        except OSError:
            return None
        return str(probe.getsockname()[0])
