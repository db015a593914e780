from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deadlines import pytest_runtest_call  # noqa: F401 - lets within_deadline record on the running test
from tests.lab import LabTarget, lab_target, require_lab
from tests.requirements import pytest_runtest_setup  # noqa: F401 - applies the `needs` markers


@pytest.fixture(scope="session")
def pbx_target() -> Iterator[LabTarget]:
    """A lab host set up as PBXware needs it: sshd on 2020 only, the GUI on 80, 81 and 443."""
    require_lab()
    with lab_target(ssh_ports=(2020,)) as target:
        yield target


@pytest.fixture(scope="session")
def serverware_target() -> Iterator[LabTarget]:
    """A lab host with sshd on both SERVERware ports."""
    require_lab()
    with lab_target(ssh_ports=(2020, 2222)) as target:
        yield target
