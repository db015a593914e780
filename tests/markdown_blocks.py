"""The fenced code blocks of the project's Markdown files, so tests can run what the documentation shows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str  # the HTML comment on the line before the fence, if any

    def __str__(self) -> str:
        return f"{self.path.name}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with its language and the HTML comment just above it."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not re.match(rf"^ {{{indent}}}```\s*$", lines[end]):
            body.append(lines[end][indent:])
            end += 1
        above = lines[index - 1].strip() if index else ""
        marker = above if above.startswith("<!--") else ""
        blocks.append(Block(path, index + 1, opening["lang"], "\n".join(body) + "\n", marker))
        index = end + 1
    return blocks


def marked_block(path: Path, marker: str) -> Block:
    """The one block whose HTML comment names `marker` first: `<!-- marker -->` or `<!-- marker: why -->`."""
    named = re.compile(rf"<!-- {re.escape(marker)}(:| |-->)")
    found = [block for block in fenced_blocks(path) if named.match(block.marker)]
    if len(found) != 1:
        raise LookupError(f"{path.name}: expected one block marked <!-- {marker} -->, found {len(found)}")
    return found[0]
