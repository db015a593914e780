"""YAML loading that remembers the line of every value, so errors can say `file:14: hosts[2].ssh.port`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """A one-line, user-facing error in a YAML file: `path:line: field: what is wrong`."""


@dataclass(frozen=True, slots=True)
class LocatedDocument:
    """A parsed YAML document and the 1-based line of each value, keyed by its path."""

    path: Path
    value: Any
    lines: Mapping[Loc, int]

    def line_of(self, loc: Loc) -> int:
        """The line of the deepest part of `loc` that exists in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1

    def error(self, loc: Loc, message: str) -> ConfigError:
        return ConfigError(f"{self.path.name}:{self.line_of(loc)}: {format_loc(loc)}: {message}")


def format_loc(loc: Iterable[str | int]) -> str:
    """Render ('hosts', 2, 'ssh', 'port') as `hosts[2].ssh.port`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "top level"


MAX_VALUES = 1_000_000


def load_located(path: Path, text: str | None = None) -> LocatedDocument:
    """Parse one YAML file (or `text`, named `path` in errors), rejecting what PyYAML would silently accept."""
    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name}:1: top level: the file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if not text.strip():
        # Blank, even with tabs (which PyYAML would call a syntax error): empty, like a file of only comments.
        return LocatedDocument(path, None, {})
    try:
        node = _compose(text)
        lines: dict[Loc, int] = {}
        value = None if node is None else _to_python(node, (), lines, path, yaml.constructor.SafeConstructor())
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_message(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}:1: YAML syntax error: {exc}") from None
    except RecursionError:
        problem = "nested too deeply, or an alias (*name) is used inside its own value"
        raise ConfigError(f"{path.name}:1: top level: {problem}") from None
    return LocatedDocument(path, value, lines)


def _compose(text: str) -> yaml.Node | None:
    """The node tree, by libyaml when PyYAML has it (ten times faster on a large inventory). A file libyaml
    rejects is parsed again in pure Python, so every syntax error reads the same on every machine."""
    fast_loader = getattr(yaml, "CSafeLoader", None)
    if fast_loader is not None:
        try:
            return yaml.compose(text, Loader=fast_loader)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _syntax_message(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "not valid YAML"
    if exc.context and exc.context_mark and ("end of stream" in problem or "<stream end>" in problem):
        # An unclosed quote or bracket: point at where it opens, not at the end of the file.
        mark = exc.context_mark
        problem = f"{problem} {exc.context} that starts on this line"
    elif exc.context and problem.startswith("but "):
        problem = f"{exc.context}, {problem}"
    elif "<block mapping start>" in problem or "<block sequence start>" in problem:
        problem = f"{problem}; check the indentation"
    line = mark.line + 1 if mark else 1
    if "'\\t'" in problem:
        problem = "a tab character is not allowed here; indent YAML with spaces"
    return f"{path.name}:{line}: YAML syntax error: {problem}"


def _to_python(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path, constructor: yaml.constructor.SafeConstructor
) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if len(lines) > MAX_VALUES:
        # Aliases can make a small file expand without bound ("billion laughs"); no inventory is this big.
        raise ConfigError(f"{path.name}:1: top level: the file expands to more than {MAX_VALUES} values")
    if isinstance(node, yaml.MappingNode):
        _require_tag(node, _MAP_TAG, loc, path)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            where = f"{path.name}:{key_node.start_mark.line + 1}: {format_loc(loc)}"
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{where}: keys must be plain values")
            if key_node.tag == _MERGE_TAG:
                raise ConfigError(f"{where}: merge keys (<<) are not supported; write the keys out, or use defaults:")
            key = _construct(key_node, loc, path, constructor)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise ConfigError(f"{where}: key {key!r} must be a name or a number")
            child = (*loc, key)
            if key in result:
                raise ConfigError(f"{path.name}:{key_node.start_mark.line + 1}: {format_loc(child)}: duplicate key")
            lines[child] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, child, lines, path, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        _require_tag(node, _SEQ_TAG, loc, path)
        return [_to_python(item, (*loc, index), lines, path, constructor) for index, item in enumerate(node.value)]
    return _construct(node, loc, path, constructor)


_MAP_TAG, _SEQ_TAG, _MERGE_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:merge"


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _require_tag(node: yaml.Node, expected: str, loc: Loc, path: Path) -> None:
    if node.tag != expected:
        where = f"{path.name}:{node.start_mark.line + 1}: {format_loc(loc)}"
        raise ConfigError(f"{where}: YAML tag {_short_tag(node.tag)} is not supported")


def _construct(node: yaml.Node, loc: Loc, path: Path, constructor: yaml.constructor.SafeConstructor) -> Any:
    """A scalar's value; a tag PyYAML cannot read becomes a located error that never echoes the value."""
    where = f"{path.name}:{node.start_mark.line + 1}: {format_loc(loc)}"
    if node.tag not in constructor.yaml_constructors:
        raise ConfigError(f"{where}: YAML tag {_short_tag(node.tag)} is not supported")
    try:
        return constructor.construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError):
        raise ConfigError(f"{where}: is not a valid {_short_tag(node.tag)} value") from None


_FRIENDLY = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "path_type": "must be a file path",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
}


def first_validation_error(
    document: LocatedDocument,
    exc: ValidationError,
    locate: Callable[[Loc], Loc],
    known_keys: Mapping[Loc, Iterable[str]],
) -> ConfigError:
    """Turn pydantic's first error (in file order) into one located line; never echo the input value.

    `locate` maps a path inside the validated object to where that value was written in the file.
    """
    errors = exc.errors()
    # pydantic also calls a list with a bad item too short (it counts only valid items); report the item instead.
    located = [(locate(_clean(error["loc"])), error) for error in errors if not _caused_by_an_item(error, errors)]
    loc, error = min(located, key=lambda pair: document.line_of(pair[0]))
    return document.error(loc, _describe(error, loc, known_keys))


def _caused_by_an_item(error: ErrorDetails, errors: Iterable[ErrorDetails]) -> bool:
    loc = error["loc"]
    inside = (other["loc"] for other in errors if len(other["loc"]) > len(loc))
    return error["type"] == "too_short" and any(other[: len(loc)] == loc for other in inside)


def _clean(loc: tuple[str | int, ...]) -> Loc:
    return tuple(part for part in loc if part != "[key]")


def _describe(error: ErrorDetails, loc: Loc, known_keys: Mapping[Loc, Iterable[str]]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = tuple(part for part in loc[:-1] if not isinstance(part, int))
        allowed = known_keys.get(parent)
        return "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"]).lower()
