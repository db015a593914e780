"""Turns a host's address into IP addresses, and finds which local address reaches each."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from preflight.deadline import Deadline

# At most this many lookups at once; each runs on a daemon thread, so a stalled resolver never delays a Ctrl-C exit
# (the interpreter joins a ThreadPoolExecutor's threads before it exits).
_lookup_slots = threading.BoundedSemaphore(8)


@dataclass(frozen=True, slots=True)
class Resolution:
    addresses: tuple[str, ...]
    error: str = ""

    @property
    def ip(self) -> str | None:
        """The address probes use: the first IPv4 address, else the first IPv6 one."""
        if len(self.addresses) == 1:
            # An IP literal, or a name with one record: nothing to choose from (the runner asks once per check).
            return self.addresses[0]
        ordered = sorted(self.addresses, key=lambda address: ipaddress.ip_address(address).version)
        return ordered[0] if ordered else None

    @property
    def records(self) -> dict[str, list[str]]:
        """The addresses by DNS record type: `A` (IPv4) and `AAAA` (IPv6), both always present."""
        return records_by_type(self.addresses)


def records_by_type(addresses: Iterable[str]) -> dict[str, list[str]]:
    """`addresses` split into `A` (IPv4) and `AAAA` (IPv6) lists, each in the resolver's order."""
    records: dict[str, list[str]] = {"A": [], "AAAA": []}
    for address in addresses:
        records["A" if ipaddress.ip_address(address).version == 4 else "AAAA"].append(address)
    return records


def resolve(address: str, deadline: Deadline) -> Resolution:
    """Every A and AAAA address of `address` (an IP literal resolves to itself)."""
    try:
        return Resolution((str(ipaddress.ip_address(address)),))
    except ValueError:
        pass
    # AF_UNSPEC asks for both record types; an AAAA-only or A-only name still resolves.
    future = _look_up_in_background(address)
    try:
        infos = future.result(timeout=deadline.remaining())
    except concurrent.futures.TimeoutError:
        return Resolution((), f"DNS lookup of {address} timed out")
    except socket.gaierror as exc:
        return Resolution((), f"{address} does not resolve ({exc.strerror})")
    except (OSError, UnicodeError) as exc:
        return Resolution((), f"{address} could not be looked up ({type(exc).__name__})")
    unique = dict.fromkeys(str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6))
    return Resolution(tuple(unique))


def _look_up_in_background(address: str) -> concurrent.futures.Future[list[Any]]:
    future: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()

    def look_up() -> None:
        with _lookup_slots:
            try:
                future.set_result(socket.getaddrinfo(address, None, socket.AF_UNSPEC, socket.SOCK_STREAM))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)

    threading.Thread(target=look_up, daemon=True, name="resolve").start()
    return future


def source_address(ip: str) -> str | None:
    """The local address the kernel would use to reach `ip`; a UDP connect sends no packet."""
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((ip, 9))
        except OSError:
            return None
        return str(probe.getsockname()[0])
