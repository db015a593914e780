"""YAML loading that remembers the line of every value, so errors can say `file:14: hosts[2].ssh.port`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """A one-line, user-facing error in a YAML file: `path:line: field: what is wrong`."""


MAX_REPORTED_ERRORS = 50


class ConfigErrors(ConfigError):
    """Every error found in one file, one line each, sorted by line; a caller that wants one line reads `lines[0]`."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = tuple(lines)


def raise_all(file_name: str, problems: Iterable[tuple[int, str]]) -> None:
    """Raise ConfigErrors for `(line, text)` problems, sorted by line and capped; do nothing when there are none."""
    # Each once, by line; errors on one line (a flow list) keep the order they were found in, the file's.
    ordered = sorted(dict.fromkeys(problems), key=lambda problem: problem[0])
    if not ordered:
        return
    lines = [text for _, text in ordered[:MAX_REPORTED_ERRORS]]
    if len(ordered) > MAX_REPORTED_ERRORS:
        lines.append(f"{file_name}: {len(ordered) - MAX_REPORTED_ERRORS} more error(s) not shown; fix these first")
    raise ConfigErrors(lines)


@dataclass(frozen=True, slots=True)
class LocatedDocument:
    """A parsed YAML document and the 1-based line of each value, keyed by its path."""

    path: Path
    value: Any
    lines: Mapping[Loc, int]
    # Unquoted values that a ` #` on the same line cut short: YAML read the rest of the line as a comment.
    commented: frozenset[Loc] = field(default_factory=frozenset)

    def line_of(self, loc: Loc) -> int:
        """The line of the deepest part of `loc` that exists in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1

    def error(self, loc: Loc, message: str) -> ConfigError:
        return ConfigError(self.problem(loc, message)[1])

    def problem(self, loc: Loc, message: str) -> tuple[int, str]:
        """One located error line and its line number, for reports of every error in the file."""
        line = self.line_of(loc)
        return line, f"{self.path.name}:{line}: {format_loc(loc)}: {message}"


# Mappings whose keys are numbers: their keys read as names (`ssh.per_port.2222`), not as list positions.
NUMBER_KEYED = frozenset({"per_port"})


def format_loc(loc: Iterable[str | int]) -> str:
    """Render ('hosts', 2, 'ssh', 'per_port', 2222) as `hosts[2].ssh.per_port.2222`."""
    text = ""
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int) and previous not in NUMBER_KEYED:
            text += f"[{part}]"
        else:
            shown = _shown_key(part)
            text += f".{shown}" if text else shown
        previous = part
    return text or "top level"


_KEY_SHOWN_LIMIT = 60


def _shown_key(part: str | int) -> str:
    # A key is the user's own text: a line break in it would split the one-line error, a long one would drown it.
    shown = str(part)
    if not shown.isprintable():
        shown = shown.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= _KEY_SHOWN_LIMIT else shown[: _KEY_SHOWN_LIMIT - 1] + "…"


MAX_VALUES = 1_000_000
# Beyond this size, a file is counted before it is composed: every value costs memory, even in a file too small to
# be refused for its size (`[1,1,1,...]` of 6 MB composed to 3 million nodes takes 1 GB and 20 s).
_COUNT_FIRST_BYTES = 1_000_000
MAX_FILE_BYTES = 64 * 1024 * 1024


def load_located(path: Path, text: str | None = None) -> LocatedDocument:
    """Parse one YAML file (or `text`, named `path` in errors), rejecting what PyYAML would silently accept."""
    try:
        if text is None:
            text = _read_text(path)
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
        if len(text) > _COUNT_FIRST_BYTES:
            _refuse_too_many_values(text, path)
        node = _compose(text)
        lines: dict[Loc, int] = {}
        value = None if node is None else _to_python(node, (), lines, path, yaml.constructor.SafeConstructor())
        commented = frozenset() if node is None else _cut_by_comment(node, text.splitlines())
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_message(path, exc)) from None
    except yaml.reader.ReaderError as exc:
        # Its text runs over two lines and names a position in characters; the user needs the line.
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        problem = f"unacceptable character #x{code:04x}: control characters such as NUL are not allowed"
        raise ConfigError(f"{path.name}:{line}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}:1: YAML syntax error: {' '.join(str(exc).split())}") from None
    except RecursionError:
        problem = "nested too deeply, or an alias (*name) is used inside its own value"
        raise ConfigError(f"{path.name}:1: top level: {problem}") from None
    return LocatedDocument(path, value, lines, commented)


def _read_text(path: Path) -> str:
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path.name}:1: top level: the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    return data.decode("utf-8")


def _refuse_too_many_values(text: str, path: Path) -> None:
    """Count the values (aliases once each) before any is built; a syntax error is left to the parse that follows."""
    fast_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    count = 0
    try:
        for event in yaml.parse(text, Loader=fast_loader):
            count += isinstance(event, yaml.NodeEvent)
            if count > MAX_VALUES:
                raise ConfigError(f"{path.name}:1: top level: the file holds more than {MAX_VALUES} values")
    except yaml.YAMLError:
        return


_COMMENT_AFTER = re.compile(r"\s+#")


def _cut_by_comment(root: yaml.Node, source: Sequence[str]) -> frozenset[Loc]:
    """The mapping values written unquoted and followed by ` #` on their last line (`password: pass #word`)."""
    found: set[Loc] = set()
    # An explicit stack, not recursion: a deeply nested file is already refused with a located error.
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue  # an alias: its node was looked at where it was defined
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                child = (*loc, int(key) if key_node.tag.endswith(":int") and key.isdigit() else key)
                if isinstance(value_node, yaml.ScalarNode) and not value_node.style:
                    mark = value_node.end_mark
                    rest = source[mark.line][mark.column :] if mark.line < len(source) else ""
                    if _COMMENT_AFTER.match(rest):
                        found.add(child)
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, index)) for index, item in enumerate(node.value))
    return frozenset(found)


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
        value = constructor.construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, LookupError, ArithmeticError):
        # PyYAML's constructors trip over odd values in their own ways: `!!int ''` raises IndexError.
        raise ConfigError(f"{where}: is not a valid {_short_tag(node.tag)} value") from None
    if isinstance(value, str) and _SURROGATE.search(value):
        # JSON writes a character beyond U+FFFF as two escapes ("\\ud83d\\ude00"), which PyYAML reads as two halves.
        try:
            return value.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            problem = "holds half of a UTF-16 escape pair (\\ud800-\\udfff) without its other half"
            raise ConfigError(f"{where}: {problem}") from None
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


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
    loc, message = min(validation_errors(exc, locate, known_keys), key=lambda pair: document.line_of(pair[0]))
    return document.error(loc, message)


def validation_errors(
    exc: ValidationError, locate: Callable[[Loc], Loc], known_keys: Mapping[Loc, Iterable[str]]
) -> list[tuple[Loc, str]]:
    """Every error pydantic found, as (where it was written in the file, message); never echoes the input value."""
    errors = exc.errors()
    # pydantic also calls a list with a bad item too short (it counts only valid items); report the item instead.
    located = [(locate(_clean(error["loc"])), error) for error in errors if not _caused_by_an_item(error, errors)]
    return [(loc, _describe(error, loc, known_keys)) for loc, error in located]


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
