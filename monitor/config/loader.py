"""Loading one YAML file into a pydantic model, with every problem positioned in the file.

ruamel.yaml keeps the line and column of each key and value; `${NAME}` / `${NAME:-default}` in
string values are substituted from the environment (never quoted back in a message); pydantic's
errors are mapped back to where the offending key or value is. `load_yaml_model` is the entry point
that every config file (monitor.yaml, feeds.yaml, and later actors, watches, channels) goes
through."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from monitor.config.bounds import (
    expansion_problem,
    loaded_children,
    nesting_problem,
    size_problem,
)
from monitor.config.errors import (
    _EXPECTED,
    FILE_PATH,
    YAML_PATH,
    ConfigError,
    ConfigIssue,
    Loc,
    Problem,
    _describe,
    _key_path,
    _number,
    _show,
    _unknown_key_message,
)
from monitor.config.fields import _TEMPLATES
from monitor.logs import register_secret

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M], *, env: Mapping[str, str] | None = None) -> M:
    """Read one YAML file and validate it with `model` (a StrictModel, ideally).

    `${NAME}` / `${NAME:-default}` in string values are substituted from `env` (default
    `os.environ`). An empty file is an empty mapping. After validation, if the model has a
    `config_problems()` method yielding `Problem`s, those are reported too. Raises ConfigError with
    every issue found, positioned at the offending key or value."""
    file = str(path)
    too_large = size_problem(path)
    if too_large:
        raise ConfigError([ConfigIssue(file, 1, 1, FILE_PATH, too_large)])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(file, 1, 1, FILE_PATH, "file not found")]) from None
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        message = "not valid UTF-8 text"
        raise ConfigError([ConfigIssue(file, line, 1, FILE_PATH, message)]) from None
    except OSError as error:
        message = f"cannot read: {error.strerror or error}"
        raise ConfigError([ConfigIssue(file, 1, 1, FILE_PATH, message)]) from None

    nesting = nesting_problem(text)
    if nesting:
        message, line, column = nesting
        raise ConfigError([ConfigIssue(file, line, column, YAML_PATH, message)])
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        raise ConfigError([_yaml_issue(file, error)]) from None
    except (YAMLError, ValueError, TypeError) as error:
        raise ConfigError(
            [ConfigIssue(file, 1, 1, YAML_PATH, f"not valid YAML: {error}")]
        ) from None
    except RecursionError:  # ruamel composes nested collections recursively
        message = "nested too deeply (hundreds of levels of lists or mappings)"
        raise ConfigError([ConfigIssue(file, 1, 1, YAML_PATH, message)]) from None
    expansion = expansion_problem(root, loaded_children)
    if expansion:
        message, node = expansion
        line, column = _node_position(node)
        raise ConfigError([ConfigIssue(file, line, column, YAML_PATH, message)])

    doc = _Document(file, os.environ if env is None else env)
    data = doc.convert(root)
    result, errors = None, []
    try:
        result = model.model_validate(data)
    except ValidationError as error:
        errors = error.errors(include_url=False)
    # Outside the except block: a ValidationError quotes input values (maybe secrets), so it must
    # not even be the __context__ of the ConfigError.
    for err in errors:
        doc.add_validation_error(model, err)
    problems = getattr(result, "config_problems", None)
    if callable(problems):
        for problem in problems():
            doc.add_problem(problem)
    if doc.issues or result is None:
        raise ConfigError(sorted(doc.issues, key=lambda issue: (issue.line, issue.column)))
    return result


def _node_position(node: object) -> tuple[int, int]:
    """1-based line and column of a loaded mapping or list (1, 1 when ruamel kept none)."""
    lc = getattr(node, "lc", None)
    return (lc.line + 1, lc.col + 1) if lc is not None and lc.line is not None else (1, 1)


def _yaml_issue(file: str, error: MarkedYAMLError) -> ConfigIssue:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = error.problem or str(error)
    duplicate = re.match(r'found duplicate key "(.*?)"', problem)
    if duplicate:  # ruamel's message would also quote both values
        return ConfigIssue(file, line, column, YAML_PATH, f"duplicate key {duplicate.group(1)!r}")
    if problem.startswith("found character '\\t'"):
        return ConfigIssue(file, line, column, YAML_PATH, "found a tab; indent YAML with spaces")
    message = problem
    context, context_mark = error.context, error.context_mark
    if context and context_mark and mark and context_mark.line != mark.line:
        message += f" ({context} started at line {context_mark.line + 1})"
    elif context:
        message += f" ({context})"
    return ConfigIssue(file, line, column, YAML_PATH, message)


_ENV_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_REF_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(:-(.*))?", re.DOTALL)
_ENV_HINT = "use ${NAME} or ${NAME:-default}"
# Variables whose values never reach a log line; URLs' credentials are masked wherever they came
# from (channels.yaml and the database URL register theirs).
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|WEBHOOK|_URL$", re.IGNORECASE)

Position = tuple[int, int]  # 0-based line, column as ruamel reports them


@dataclass
class _Document:
    """A YAML document converted to plain data, with where each key and value is."""

    file: str
    env: Mapping[str, str]
    keys: dict[Loc, Position] = field(default_factory=dict)
    values: dict[Loc, Position] = field(default_factory=dict)
    raw: dict[Loc, str] = field(default_factory=dict)  # text as written, where env was used
    secrets: set[str] = field(default_factory=set)  # env values substituted anywhere
    issues: list[ConfigIssue] = field(default_factory=list)
    reported: set[Loc] = field(default_factory=set)  # locs the loader already reported

    # ----- conversion

    def convert(self, root: object) -> object:
        position = (
            (root.lc.line, root.lc.col) if isinstance(root, CommentedMap | CommentedSeq) else (0, 0)
        )
        self.values[()] = position
        return self._convert(root, ())

    def _convert(self, node: object, loc: Loc) -> object:
        tag = getattr(getattr(node, "tag", None), "value", None)
        if isinstance(node, TaggedScalar):
            if tag == "tag:yaml.org,2002:str":
                return self._string(str(node.value), loc)
            self._loader_issue(loc, f"unsupported YAML tag {tag!r}")
            return None
        if tag and isinstance(node, CommentedMap | CommentedSeq):
            self._loader_issue(loc, f"unsupported YAML tag {tag!r}")
            return None
        if isinstance(node, dict):
            return self._mapping(node, loc)
        if isinstance(node, list):
            items = []
            for i, item in enumerate(node):
                self.values[(*loc, i)] = _lc(node, "item", i) or self.values[loc]
                items.append(self._convert(item, (*loc, i)))
            return tuple(items)
        if isinstance(node, str):
            return self._string(str(node), loc)
        if isinstance(node, bool) or node is None or isinstance(node, date):
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        return node

    def _mapping(self, node: dict, loc: Loc) -> dict:
        result = {}
        for key, value in node.items():
            key_position = _lc(node, "key", key) or self.values[loc]
            value_position = _lc(node, "value", key) or key_position
            if value is None and value_position[0] != key_position[0]:
                value_position = key_position  # "key:" with nothing after it
            if not isinstance(key, str):
                child: Loc = (*loc, _show(key))
                self.keys[child] = key_position
                message = f"keys must be strings, got {_describe(key)} (quote it: '{_show(key)}')"
                self._loader_issue(child, message)
                continue
            child = (*loc, str(key))
            self.keys[child] = key_position
            self.values[child] = value_position
            result[str(key)] = self._convert(value, child)
        return result

    def _string(self, text: str, loc: Loc) -> str:
        if "$" not in text:
            return text
        parts: list[str] = []
        substituted = False
        last = 0
        for match in _ENV_RE.finditer(text):
            parts.append(text[last : match.start()])
            last = match.end()
            whole, inner = match.group(0), match.group(1)
            if whole == "$${":
                parts.append("${")
                continue
            substituted = True
            if inner is None:
                self._loader_issue(loc, f"unterminated '${{' ({_ENV_HINT}; write $${{ for '${{')")
                continue
            ref = _ENV_REF_RE.fullmatch(inner)
            if ref is None or "${" in (ref.group(3) or ""):
                self._loader_issue(loc, f"invalid environment reference {whole!r} ({_ENV_HINT})")
                continue
            name, has_default, default = ref.group(1), ref.group(2), ref.group(3)
            value = self.env.get(name)
            if has_default and not value:
                parts.append(default)
            elif value is None:
                self._loader_issue(loc, f"environment variable {name} is not set")
            else:
                parts.append(value)
                self.secrets.add(value)
                if _SECRET_NAME.search(name):
                    register_secret(value)  # never logged (monitor.logs)
        parts.append(text[last:])
        if substituted:
            self.raw[loc] = text
        return "".join(parts)

    def _loader_issue(self, loc: Loc, message: str) -> None:
        self.reported.add(loc)
        line, column = self.values[loc] if loc in self.values else self.keys.get(loc, (0, 0))
        self.issues.append(ConfigIssue(self.file, line + 1, column + 1, _key_path(loc), message))

    # ----- mapping validation errors back to positions

    def _known_prefix(self, loc: Loc) -> Loc:
        """The longest prefix of `loc` that is in the document (pydantic may add union tags)."""
        path: Loc = ()
        for part in loc:
            if (*path, part) not in self.values and (*path, part) not in self.keys:
                break
            path = (*path, part)
        return path

    def add_validation_error(self, model: type[BaseModel], err: Mapping[str, Any]) -> None:
        loc: Loc = tuple(err["loc"])
        kind = err["type"]
        on_key = bool(loc) and loc[-1] == "[key]"
        if on_key:
            loc = loc[:-1]
        path = self._known_prefix(loc)
        if any(path[: len(bad)] == bad for bad in self.reported):
            return  # the loader already reported a problem here
        if kind == "too_short" and len(err["input"]) >= err["ctx"]["min_length"]:
            return  # not too short as written: some items failed and are reported themselves
        if kind == "missing" and len(path) == len(loc) - 1:
            parent = self.values.get(path, (0, 0))  # the mapping the key is missing from
            self._add(loc, parent, "required key is missing")
            return
        if kind == "extra_forbidden" or on_key:
            position = self.keys.get(path, self.values.get(path, (0, 0)))
        else:
            position = self.values.get(path, self.keys.get(path, (0, 0)))
        self._add(path, position, self._message(model, path, err))

    def add_problem(self, problem: Problem) -> None:
        path = self._known_prefix(problem.loc)
        position = self.values.get(path, self.keys.get(path, (0, 0)))
        message = problem.message
        if problem.first is not None:
            first = self._known_prefix(problem.first)
            line = self.values.get(first, self.keys.get(first, (0, 0)))[0] + 1
            message += f" (first at {_key_path(first)}, line {line})"
        self._add(path, position, message)

    def _add(self, loc: Loc, position: Position, message: str) -> None:
        # Messages quote `raw` instead of a value from the environment; this is the safety net for
        # validators of other models that put their input into a message.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 3:
                message = message.replace(secret, "***")
        path = _key_path(loc)
        self.issues.append(ConfigIssue(self.file, position[0] + 1, position[1] + 1, path, message))

    def _message(self, model: type[BaseModel], path: Loc, err: Mapping[str, Any]) -> str:
        kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
        raw = self.raw.get(path)

        def described() -> str:  # "string 'x'", "a list", ...
            if raw is not None:
                return f"{raw!r} (after environment substitution)"
            return _describe(value)

        def shown() -> str:  # 'x', 5, true, ...
            return repr(raw) if raw is not None else _show(value)

        if kind in _TEMPLATES:
            text = described() if kind.endswith("_type") else shown()
            return _TEMPLATES[kind].replace("{value}", text)
        if kind == "extra_forbidden":
            return _unknown_key_message(model, path)
        expected = _EXPECTED.get(kind)
        if expected:
            return f"expected {expected}, got {described()}"
        if kind == "too_short":
            return "must not be empty" if ctx.get("min_length") == 1 else str(err["msg"])
        if kind == "string_too_short":
            return "must not be empty"
        if kind in ("value_error", "assertion_error") and "error" in ctx:
            return str(ctx["error"])  # a plain ValueError raised by a model's own validator
        bounds = {
            "greater_than_equal": ("at least", "ge"),
            "less_than_equal": ("at most", "le"),
            "greater_than": ("greater than", "gt"),
            "less_than": ("less than", "lt"),
        }
        if kind in bounds:
            words, key = bounds[kind]
            return f"must be {words} {_number(ctx.get(key))}, got {shown()}"
        message = str(err["msg"])
        return message[:1].lower() + message[1:]


def _lc(node: object, kind: str, key: object) -> Position | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        line, column = getattr(lc, kind)(key)
    except (KeyError, IndexError, TypeError):
        return None  # e.g. a key merged in with "<<:"
    return (line, column)
