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


def load_located(path: Path) -> LocatedDocument:
    """Parse one YAML file, rejecting what PyYAML would silently accept (duplicate keys)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name}:1: top level: the file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_message(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}:1: YAML syntax error: {exc}") from None
    lines: dict[Loc, int] = {}
    if node is None:
        return LocatedDocument(path, None, lines)
    value = _to_python(node, (), lines, path, yaml.constructor.SafeConstructor())
    return LocatedDocument(path, value, lines)


def _syntax_message(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    problem = exc.problem or "not valid YAML"
    if "'\\t'" in problem:
        problem = "a tab character is not allowed here; indent YAML with spaces"
    return f"{path.name}:{line}: YAML syntax error: {problem}"


def _to_python(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path, constructor: yaml.constructor.SafeConstructor
) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{path.name}:{key_node.start_mark.line + 1}: {format_loc(loc)}: keys must be plain values")
            key = constructor.construct_object(key_node)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise ConfigError(f"{path.name}:{key_node.start_mark.line + 1}: {format_loc(loc)}: key {key!r} must be a name or a number")
            child = (*loc, key)
            if key in result:
                raise ConfigError(f"{path.name}:{key_node.start_mark.line + 1}: {format_loc(child)}: duplicate key")
            lines[child] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, child, lines, path, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, index), lines, path, constructor) for index, item in enumerate(node.value)]
    return constructor.construct_object(node)


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
    located = [(locate(_clean(error["loc"])), error) for error in exc.errors()]
    loc, error = min(located, key=lambda pair: document.line_of(pair[0]))
    return document.error(loc, _describe(error, loc, known_keys))


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
