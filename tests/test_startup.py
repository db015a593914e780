"""Start-up loads only what a command uses: the command line, --version and validate load no heavy library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("paramiko", "scapy", "jinja2", "starlette", "uvicorn", "sqlalchemy", "cryptography", "requests")


def _loaded_after(code: str) -> set[str]:
    """The top-level packages in sys.modules after `code` runs in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(completed.stdout.split())


def test_importing_the_command_line_loads_no_heavy_library_nor_the_inventory_models() -> None:
    loaded = _loaded_after("import preflight.cli")

    assert loaded & {*HEAVY, "pydantic", "yaml"} == set()


def test_the_check_that_finds_loaded_libraries_sees_one_that_is_loaded() -> None:
    # The control: the same probe does see the libraries a module really imports.
    loaded = _loaded_after("import preflight.signing, preflight.inventory")

    assert {"cryptography", "pydantic", "yaml"} <= loaded


def test_version_prints_the_version_without_loading_heavy_libraries() -> None:
    loaded = _loaded_after(
        "import contextlib, io, preflight.cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    preflight.cli.main(['--version'])\n"
        "assert out.getvalue().startswith('preflight '), out.getvalue()"
    )

    assert loaded & {*HEAVY, "pydantic"} == set()


@pytest.mark.parametrize("command", ["validate", "check --help"])
def test_validate_and_help_load_the_inventory_models_but_no_probe_library(tmp_path: Path, command: str) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  - {name: pbx1, product: pbxware, address: 127.0.0.1}\n")
    arguments = [*command.split(), str(inventory)] if command == "validate" else command.split()

    loaded = _loaded_after(
        "import contextlib, io, preflight.cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    code = preflight.cli.main({arguments!r})\n"
        "assert 'valid' in out.getvalue() or 'usage:' in out.getvalue(), out.getvalue()"
    )

    assert loaded & set(HEAVY) == set()
    if command == "validate":
        assert "pydantic" in loaded
