"""What a config problem is, and how values and key paths are written in its message.

`ConfigIssue` is one problem at "file:line:column: key.path"; `ConfigError` carries every issue
found; `Problem` is what a model reports about itself after validation. The helpers below word the
messages (values as written in YAML, "expected X, got Y", "did you mean ...?")."""

from __future__ import annotations

import difflib
import re
import types
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel

Loc = tuple[str | int, ...]
"""A path into a YAML document: mapping keys and sequence indexes, e.g. ('outlets', 'rferl',
'feeds', 0, 'url')."""

# Key paths for issues that are not about one key.
ROOT_PATH = "(root)"  # the document as a whole (e.g. it is a list, not a mapping)
YAML_PATH = "(yaml)"  # the file is not valid YAML
FILE_PATH = "(file)"  # the file is missing or unreadable


# --------------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file. `line` and `column` are 1-based."""

    file: str
    line: int
    column: int
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.key_path}: {self.message}"


class ConfigError(Exception):
    """Every problem found in one or more config files; `str()` gives one issue per line."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.issues,))


class Problem(NamedTuple):
    """A problem a model finds in itself after validation (see `load_yaml_model`).

    `loc` is where it is; `first`, if given, is an earlier place it conflicts with (its key path
    and line are added to the message)."""

    loc: Loc
    message: str
    first: Loc | None = None


# --------------------------------------------------------------------------------------------------
# Wording of messages


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _key_path(loc: Loc) -> str:
    if not loc:
        return ROOT_PATH
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _show(value: object) -> str:
    """A value as it would be written in YAML, strings quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _show(value)


def _describe(value: object) -> str:
    """What a wrong value is, for 'expected X, got Y'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _show(value)
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, date):
        return f"date {value.isoformat()}"
    return type(value).__name__


def _unknown_key_message(model: type[BaseModel], path: Loc) -> str:
    parent = _model_at(model, path[:-1])
    if parent is None:
        return "unknown key"
    allowed = list(parent.model_fields)
    close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(allowed)})"


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc`, if there is one."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return None
            current = info.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation
