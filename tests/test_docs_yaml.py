"""Every YAML inventory the documentation shows is one `preflight validate` accepts, with its variables set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.lab import REPO
from tests.markdown_blocks import Block, fenced_blocks

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_VARIABLE = re.compile(r"\$\{(\w+)\}")


def _yaml_blocks() -> list[Block]:
    return [block for path in DOCUMENTS for block in fenced_blocks(path) if block.lang in ("yaml", "yml")]


def _is_inventory(block: Block) -> bool:
    return re.search(r"^hosts:", block.text, re.MULTILINE) is not None


def _validate(inventory: Path, text: str) -> subprocess.CompletedProcess[str]:
    variables = {name: f"dummy-{name.lower()}-value" for name in _VARIABLE.findall(text)}
    return subprocess.run(
        [sys.executable, "-m", "preflight", "validate", str(inventory)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=inventory.parent,
        env={**os.environ, **variables},
    )


def test_the_readme_shows_an_inventory() -> None:
    assert any(_is_inventory(block) for block in _yaml_blocks() if block.path.name == "README.md")


@pytest.mark.parametrize("block", _yaml_blocks(), ids=str)
def test_every_yaml_block_in_the_documentation_parses(block: Block) -> None:
    yaml.safe_load(block.text)


@pytest.mark.parametrize("block", [block for block in _yaml_blocks() if _is_inventory(block)], ids=str)
def test_every_documented_inventory_validates(block: Block, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(block.text)
    inventory.chmod(0o600)

    completed = _validate(inventory, block.text)

    assert completed.returncode == 0, f"{block}: {completed.stderr}"


def test_the_example_inventory_validates(tmp_path: Path) -> None:
    text = (REPO / "inventory.example.yaml").read_text()
    inventory = tmp_path / "inventory.example.yaml"
    inventory.write_text(text)

    completed = _validate(inventory, text)

    assert completed.returncode == 0, completed.stderr
