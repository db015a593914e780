"""What a test needs from the machine: a tool, a privilege, a service.

On a developer's machine a missing need skips the test. In CI (`CI=true`) it fails it: scripts/test.sh installs every
tool and CI runs as root, so a skip there would hide a test that never ran behind a green build. Every such skip in
the suite goes through `need` (or the `needs` marker); tests/test_ci_requirements.py keeps it that way.
"""

from __future__ import annotations

import os
import shutil

import pytest

from preflight.portscan import raw_sockets_allowed


def in_ci() -> bool:
    """Whether this is a CI run, where nothing a test needs may be missing."""
    return os.environ.get("CI") == "true"


def need(available: bool, reason: str) -> None:
    """Go on when `available`; else skip the test, or in CI fail it."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing tool or privilege fails the test instead of skipping it)")
    pytest.skip(reason)


def needs(available: bool, reason: str) -> pytest.MarkDecorator:
    """`need` as a marker, for a test function or a `pytest.param`; applied at setup by `pytest_runtest_setup`."""
    return pytest.mark.needs(available, reason)


def need_tool(name: str, package: str) -> str:
    """The path of the command `name` (from the Debian `package` that scripts/test.sh installs)."""
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed (Debian package {package}; scripts/test.sh installs it)")
    assert path is not None
    return path


def is_root() -> bool:
    """Whether the tests run as root, as CI does."""
    return os.geteuid() == 0


def need_root(why: str) -> None:
    """Root for `why` (network namespaces, nftables, another user's identity)."""
    need(is_root(), f"needs root: {why}")


needs_raw_sockets = needs(raw_sockets_allowed(), "needs root or CAP_NET_RAW for raw sockets (SYN scan)")
needs_ssh_keygen = needs(
    shutil.which("ssh-keygen") is not None, "ssh-keygen is not installed (openssh-client; scripts/test.sh installs it)"
)
needs_setpriv_as_root = needs(
    is_root() and shutil.which("setpriv") is not None, "needs root and setpriv (util-linux) to become nobody"
)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Apply each `needs` marker of a test before its fixtures run."""
    for mark in item.iter_markers("needs"):
        need(*mark.args, **mark.kwargs)
