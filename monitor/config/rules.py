"""The watch-rule config files: `actors.yaml` (`ActorsFile`), `watches.yaml` (`WatchesFile`) and
`channels.yaml` (`ChannelsFile`), cross-checked and resolved together by `load_rules` into one
`RuleSet` (monitor.rules.spec).

A watch's structured keys (actors, keywords, groups, exclude, near) and its query string compile
to the same query AST, built the way the query parser builds it, so a structured watch and the
query that says the same thing are equal. Keywords follow the query tokenizer's rules.

Two things `load_yaml_model` cannot do are done here with the file's YAML nodes (`_Source`): a
problem inside a query is placed on the offending character (file:line:column, when the query is
written on one line), and every duplicated key is reported with the line of its first occurrence
(a YAML mapping cannot hold a key twice, so the loader stops at the first duplicate)."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path
from typing import Annotated, Generic, TypeVar

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, model_validator
from pydantic.functional_validators import AfterValidator, BeforeValidator, PlainValidator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.nodes import Node as YamlNode

from monitor.config.bounds import (
    composed_children,
    expansion_problem,
    nesting_problem,
    size_problem,
)
from monitor.config.channels import ChannelConfig
from monitor.config.errors import (
    YAML_PATH,
    ConfigError,
    ConfigIssue,
    Loc,
    Problem,
    _describe,
    _key_path,
    _show,
)
from monitor.config.fields import (
    _NAME_HINT,
    DisplayName,
    Duration,
    Language,
    PositiveDuration,
    Slug,
    StrictModel,
    Tag,
)
from monitor.config.loader import load_yaml_model
from monitor.config.models import FeedSpec
from monitor.logs import register_url
from monitor.rules.query import (
    MIN_PREFIX_STEM,
    ActorRef,
    And,
    Kind,
    Leaf,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Proximity,
    QuerySyntaxError,
    Term,
    flatten,
    is_word_char,
    parse_query,
    tokenize,
)
from monitor.rules.spec import (
    DEFAULT_WEIGHTS,
    FIELDS,
    ActorSpec,
    Alias,
    ChannelSpec,
    Delivery,
    Filters,
    RuleSet,
    WatchSpec,
)
from monitor.rules.spec import Field as FieldLiteral

ACTORS_FILE = "actors.yaml"
WATCHES_FILE = "watches.yaml"
CHANNELS_FILE = "channels.yaml"


# --------------------------------------------------------------------------------------------------
# Field types. Errors raised here reach the user through `load_yaml_model` as they are worded.


def _name_type(kind: str, what: str, pattern: str, hint: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def validate(value: str) -> str:
        if not compiled.fullmatch(value):
            template = f"not a valid {what}: {{value}} ({hint})"
            raise PydanticCustomError(kind, template, {"value": _show(value)})
        return value

    return AfterValidator(validate)


# An actor name must survive as `@name` in a query, which reads '-' only between letters/digits.
_ACTOR_HINT = "use lowercase letters and digits, joined by single '-' or '_'"
ActorName = Annotated[
    str, _name_type("actor_name", "actor name", r"[a-z0-9]+(?:[-_][a-z0-9]+)*", _ACTOR_HINT)
]
WatchName = Annotated[
    str, _name_type("watch_name", "watch name", r"[a-z0-9][a-z0-9_-]*", _NAME_HINT)
]
ChannelName = Annotated[
    str, _name_type("channel_name", "channel name", r"[a-z0-9][a-z0-9_-]*", _NAME_HINT)
]


def _check_alias(text: str) -> str:
    """An alias as written, stripped; a trailing '*' (prefix alias) after 3 or more characters."""
    text = text.strip()
    if not text:
        raise ValueError("must not be empty")
    if not any(map(is_word_char, text)):
        raise ValueError(f"an alias needs a letter or digit, got {text!r}")
    stem = text.removesuffix("*")
    if "*" in stem:
        raise ValueError(f"'*' may only end an alias, as in Путин*; got {text!r}")
    if stem != text:
        if not is_word_char(stem[-1]):
            raise ValueError(f"'*' must directly follow a letter or digit, got {text!r}")
        if any(c.isspace() for c in stem):
            raise ValueError(f"a prefix alias must be one word, got {text!r}")
        if len(stem) < MIN_PREFIX_STEM:
            needs = f"at least {MIN_PREFIX_STEM} characters before '*'"
            raise ValueError(f"a prefix alias needs {needs}, got {text!r}")
    return text


def _check_keyword(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    keyword_leaf(text)  # raises QuerySyntaxError: "column N: reason"
    return text


def _check_item(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    keyword_leaf(text, actors=True)
    return text


def _check_query(text: str) -> str:
    parse_query(text)
    return text


def _check_field(value: object) -> FieldLiteral:
    for name in FIELDS:
        if value == name:
            return name
    shown = _show(value) if isinstance(value, str) else _describe(value)
    template = f"not a field: {{value}} (use {' or '.join(FIELDS)})"
    raise PydanticCustomError("field_name", template, {"value": shown})


def _check_near(value: object) -> Proximity:
    if value == "sentence" or value == "paragraph":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    template = "expected sentence, paragraph or a number of words (1 or more), got {value}"
    raise PydanticCustomError("near", template, {"value": _describe(value)})


_CRON_HINT = "5 fields: minute hour day month weekday, e.g. '0 7 * * mon-fri'"


def _check_cron(text: str) -> str:
    try:
        CronTrigger.from_crontab(text, timezone=UTC)
    except ValueError as error:
        reason = str(error)[:1].lower() + str(error)[1:]
        raise ValueError(f"not a valid cron expression: {reason} (use {_CRON_HINT})") from None
    # APScheduler 3 numbers weekdays from Monday = 0, cron from Sunday = 0 (apscheduler#286): a
    # number would silently shift the digest by a day, so only names are accepted.
    if any(c.isdigit() for c in text.split()[4]):
        raise ValueError(
            f"write the weekday as a name (mon, tue, ..., sun), not a number: {text!r}"
        )
    return text


def _none_is_empty(value: object) -> object:
    """`watches:` with every entry commented out is an empty section, not an error."""
    return {} if value is None else value


NonEmpty = Annotated[str, Field(min_length=1)]
AliasText = Annotated[str, AfterValidator(_check_alias)]
Keyword = Annotated[str, AfterValidator(_check_keyword)]
Item = Annotated[str, AfterValidator(_check_item)]  # a keyword or @actor
Query = Annotated[str, AfterValidator(_check_query)]
FieldName = Annotated[FieldLiteral, PlainValidator(_check_field, json_schema_input_type=str)]
NearDistance = Annotated[Proximity, PlainValidator(_check_near, json_schema_input_type=int | str)]
Cron = Annotated[str, AfterValidator(_check_cron)]


# --------------------------------------------------------------------------------------------------
# actors.yaml


class AliasConfig(StrictModel):
    """One spelling of an actor: a string, or a mapping to make it case-sensitive."""

    text: AliasText
    case_sensitive: bool = False

    # Replaces StrictModel's validator of the same name: here a string is the alias itself.
    @model_validator(mode="before")
    @classmethod
    def _empty_section_means_defaults(cls, data: object) -> object:
        if isinstance(data, str):
            return {"text": data}
        if data is None:
            raise ValueError("must not be empty")
        if not isinstance(data, dict):
            template = "expected an alias (a string, or a mapping with text), got {value}"
            raise PydanticCustomError("alias_type", template, {"value": _describe(data)})
        return data


class ActorConfig(StrictModel):
    name: DisplayName | None = None
    aliases: tuple[AliasConfig, ...] = Field(min_length=1)

    def spec(self, key: str) -> ActorSpec:
        aliases = tuple(Alias(a.text, a.case_sensitive) for a in self.aliases)
        return ActorSpec(name=key, aliases=aliases, display=self.name)


class ActorsFile(StrictModel):
    """actors.yaml: actors by name."""

    actors: Annotated[dict[ActorName, ActorConfig], BeforeValidator(_none_is_empty)] = Field(
        default_factory=dict
    )

    def problems(self) -> Iterable[Problem]:
        """What is wrong beyond the schema (reported by `load_rules`, with the references)."""
        for key, actor in self.actors.items():
            yield from _duplicate_aliases(("actors", key, "aliases"), actor.aliases)

    def specs(self) -> dict[str, ActorSpec]:
        return {key: actor.spec(key) for key, actor in self.actors.items()}


def _duplicate_aliases(loc: Loc, aliases: Sequence[AliasConfig]) -> Iterator[Problem]:
    """Aliases that match nothing their actor's earlier aliases do not already match."""
    insensitive: dict[str, Loc] = {}  # folded text -> where
    sensitive: dict[str, Loc] = {}  # text as written -> where
    for i, alias in enumerate(aliases):
        folded = " ".join(alias.text.split()).casefold()
        spelled = " ".join(alias.text.split())
        if alias.case_sensitive:
            first = sensitive.get(spelled) or insensitive.get(folded)
            sensitive.setdefault(spelled, (*loc, i))
        else:
            first = insensitive.get(folded) or next(
                (at for text, at in sensitive.items() if text.casefold() == folded), None
            )
            insensitive.setdefault(folded, (*loc, i))
        if first is not None:
            yield Problem((*loc, i), f"duplicate alias {alias.text!r}", first)


# --------------------------------------------------------------------------------------------------
# watches.yaml


class Weights(StrictModel):
    title: float = Field(DEFAULT_WEIGHTS["title"], ge=0, allow_inf_nan=False)
    text: float = Field(DEFAULT_WEIGHTS["text"], ge=0, allow_inf_nan=False)


class WatchConfig(StrictModel):
    enabled: bool = True
    actors: tuple[NonEmpty, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    groups: tuple[Annotated[tuple[Item, ...], Field(min_length=1)], ...] = ()
    exclude: tuple[Item, ...] = ()
    query: Query | None = None
    near: NearDistance | None = None
    fields: tuple[FieldName, ...] = Field(FIELDS, min_length=1)
    outlets: tuple[Slug, ...] = ()
    tags: tuple[Tag, ...] = ()
    languages: tuple[Language, ...] = ()
    weights: Weights = Weights()
    threshold: float = Field(0.0, ge=0, allow_inf_nan=False)
    inflect: bool = True
    notify: tuple[NonEmpty, ...] = ()
    digest: Cron | None = None
    group_wait: Duration | None = None  # default: monitor.yaml delivery.group_wait
    group_interval: PositiveDuration | None = None
    repeat_interval: PositiveDuration | None = None
    updates: bool = True  # send a story again when it gains outlets

    def problems(self, loc: Loc) -> Iterator[Problem]:
        """What is wrong with this watch on its own (references to other files aside)."""
        if not (self.actors or self.keywords or self.groups or self.query is not None):
            if self.exclude:
                message = "exclude alone only rules articles out: give actors, keywords, groups "
                yield Problem((*loc, "exclude"), message + "or a query too")
            else:
                yield Problem(loc, "empty watch: give actors, keywords, groups or a query")
        if self.near is not None and not (self.actors and self.keywords):
            message = "near needs both actors and keywords: it is how close they must be"
            yield Problem((*loc, "near"), message)
        if self.digest is not None and not self.notify:
            yield Problem((*loc, "digest"), "a digest needs notify: the channels to send it to")

    def spec(self, name: str) -> WatchSpec:
        """The resolved watch; only for a watch that loaded without problems."""
        return WatchSpec(
            name=name,
            expr=watch_expr(self),
            fields=tuple(dict.fromkeys(self.fields)),
            filters=Filters(
                frozenset(self.outlets), frozenset(self.tags), frozenset(self.languages)
            ),
            weights={"title": self.weights.title, "text": self.weights.text},
            threshold=self.threshold,
            inflect=self.inflect,
            delivery=Delivery(
                tuple(dict.fromkeys(self.notify)),
                self.digest,
                self.group_wait,
                self.group_interval,
                self.repeat_interval,
                self.updates,
            ),
        )


class WatchesFile(StrictModel):
    """watches.yaml: watches by name."""

    watches: Annotated[dict[WatchName, WatchConfig], BeforeValidator(_none_is_empty)] = Field(
        default_factory=dict
    )

    def problems(self) -> Iterable[Problem]:
        """What is wrong beyond the schema (reported by `load_rules`, with the references)."""
        for name, watch in self.watches.items():
            yield from watch.problems(("watches", name))


def keyword_leaf(text: str, *, actors: bool = False) -> Leaf:
    """One keyword as a query leaf: a word, words (a phrase), a "quoted phrase", a prefix*, and
    with `actors` also an @actor. Raises QuerySyntaxError, its column counted within `text`."""
    tokens = tokenize(text)[:-1]  # without END
    if not tokens:
        raise QuerySyntaxError(1, "empty keyword")
    if all(token.kind is Kind.WORD for token in tokens):
        if len(tokens) == 1:
            return Term(tokens[0].text)
        return Phrase(tuple(token.text for token in tokens))
    if len(tokens) == 1:
        (token,) = tokens
        if token.kind is Kind.PREFIX:
            return Prefix(token.text)
        if token.kind is Kind.PHRASE:
            return Phrase(token.words)
        if token.kind is Kind.ACTOR and actors:
            return ActorRef(token.text)
        if token.kind is Kind.ACTOR:
            raise QuerySyntaxError(token.column, "an actor belongs under actors:, not keywords")
    bad = next(token for token in tokens if token.kind is not Kind.WORD)
    if bad.kind is Kind.PREFIX:  # point at the '*', as the parser does inside a quoted phrase
        raise QuerySyntaxError(
            bad.column + len(bad.text), "wildcards are not allowed inside a phrase"
        )
    if bad.kind in (Kind.PHRASE, Kind.ACTOR):
        raise QuerySyntaxError(bad.column, "a quoted phrase or @actor must be an item of its own")
    raise QuerySyntaxError(
        bad.column,
        f"{bad.describe()} cannot be used in a keyword (a word, a phrase or a prefix like "
        "sanction*); write a query for AND, OR, NOT, NEAR and parentheses",
    )


def watch_expr(watch: WatchConfig) -> Node:
    """The whole watch as one query AST, built as `parse_query` builds the equivalent query:
    actors AND keywords (or actors NEAR keywords) AND each group AND query AND NOT each exclude."""
    actors: list[Node] = [ActorRef(name) for name in watch.actors]
    keywords: list[Node] = [keyword_leaf(text) for text in watch.keywords]
    parts: list[Node] = []
    if actors and keywords and watch.near is not None:
        parts.append(Near(flatten(Or, actors), flatten(Or, keywords), watch.near))
    else:
        parts += [flatten(Or, clause) for clause in (actors, keywords) if clause]
    for group in watch.groups:
        parts.append(flatten(Or, [keyword_leaf(item, actors=True) for item in group]))
    if watch.query is not None:
        parts.append(parse_query(watch.query))
    parts += [Not(keyword_leaf(item, actors=True)) for item in watch.exclude]
    return flatten(And, parts)


# --------------------------------------------------------------------------------------------------
# channels.yaml (minimal: the delivery issue extends it)


class ChannelsFile(StrictModel):
    """channels.yaml: delivery channels by name."""

    channels: Annotated[dict[ChannelName, ChannelConfig], BeforeValidator(_none_is_empty)] = Field(
        default_factory=dict
    )

    def problems(self) -> Iterable[Problem]:
        for name, channel in self.channels.items():
            yield from channel.problems(("channels", name))

    def specs(self, config_dir: Path) -> tuple[dict[str, ChannelSpec], list[Problem]]:
        """Each channel resolved; a url_file that cannot be read is a problem at its key."""
        specs: dict[str, ChannelSpec] = {}
        problems = []
        for name, channel in self.channels.items():
            try:
                specs[name] = channel.spec(name, config_dir)
            except (OSError, ValueError) as err:
                reason = err.strerror if isinstance(err, OSError) and err.strerror else "invalid"
                what = "cannot read it" if isinstance(err, OSError) else "it holds no apprise URL"
                loc = ("channels", name, "url_file")
                problems.append(Problem(loc, f"{what}: {reason.lower()} ({channel.url_file})"))
        return specs, problems


# --------------------------------------------------------------------------------------------------
# Positions from the YAML nodes


Position = tuple[int, int]  # 0-based line, column as ruamel reports them
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_COLUMN_RE = re.compile(r"column (\d+): ")
_ENV_NAME_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_SECTION_NOUNS: dict[Loc, str] = {
    ("actors",): "actor",
    ("watches",): "watch",
    ("channels",): "channel",
}


@dataclass
class _Source:
    """Where each key and value of one YAML file is, from its composed nodes (no values built)."""

    file: str
    values: dict[Loc, Position] = field(default_factory=dict)  # at the key for "key:" (null)
    scalars: dict[Loc, ScalarNode] = field(default_factory=dict)
    duplicates: list[ConfigIssue] = field(default_factory=list)
    secrets: tuple[str, ...] = ()  # environment values the file refers to

    @classmethod
    def read(cls, path: Path, env: Mapping[str, str]) -> _Source:
        """The positions in `path`; none if it cannot be read or parsed (the loader says why)."""
        source = cls(str(path))
        if size_problem(path):
            return source
        try:
            text = path.read_text(encoding="utf-8")
            if nesting_problem(text):
                return source
            root = YAML(typ="rt").compose(text)
        except (OSError, UnicodeDecodeError, YAMLError, ValueError, TypeError, RecursionError):
            return source
        if expansion_problem(root, composed_children):  # walking it would never end
            return source
        values = {env[name] for name in _ENV_NAME_RE.findall(text) if len(env.get(name, "")) >= 3}
        source.secrets = tuple(sorted(values, key=len, reverse=True))
        if root is not None:
            source.values[()] = _mark(root)
            source._walk(root, (), set())
        return source

    def _walk(self, node: YamlNode, loc: Loc, active: set[int]) -> None:
        if id(node) in active:
            return  # an anchor that contains its own alias
        active.add(id(node))
        if isinstance(node, MappingNode):
            self._mapping(node, loc, active)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self.values[(*loc, i)] = _mark(item)
                self._walk(item, (*loc, i), active)
        elif isinstance(node, ScalarNode):
            self.scalars[loc] = node
        active.discard(id(node))

    def _mapping(self, node: MappingNode, loc: Loc, active: set[int]) -> None:
        first: dict[tuple[str, str], Position] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or str(key_node.tag) == _MERGE_TAG:
                continue  # merged keys are placed at their mapping, as the loader does
            child = (*loc, key_node.value)
            key_position = _mark(key_node)
            identity = (str(key_node.tag), key_node.value)
            if identity in first:
                self._duplicate(child, key_position, first[identity])
                continue
            first[identity] = key_position
            value_position = _mark(value_node)
            if str(value_node.tag) == _NULL_TAG and value_position[0] != key_position[0]:
                value_position = key_position  # "key:" with nothing after it
            self.values[child] = value_position
            self._walk(value_node, child, active)

    def _duplicate(self, loc: Loc, position: Position, first: Position) -> None:
        noun = _SECTION_NOUNS.get(loc[:-1], "key")
        message = f"duplicate {noun} {loc[-1]!r} (first at line {first[0] + 1})"
        self.duplicates.append(self._issue(loc, position, message))

    def _issue(self, loc: Loc, position: Position, message: str) -> ConfigIssue:
        for secret in self.secrets:
            message = message.replace(secret, "***")
        return ConfigIssue(self.file, position[0] + 1, position[1] + 1, _key_path(loc), message)

    def _known_prefix(self, loc: Loc) -> Loc:
        path: Loc = ()
        for part in loc:
            if (*path, part) not in self.values:
                break
            path = (*path, part)
        return path

    def issue(self, problem: Problem) -> ConfigIssue:
        """`problem` placed at its value, as `load_yaml_model` places a model's own problems."""
        path = self._known_prefix(problem.loc)
        message = problem.message
        if problem.first is not None:
            first = self._known_prefix(problem.first)
            line = self.values.get(first, (0, 0))[0] + 1
            message += f" (first at {_key_path(first)}, line {line})"
        position = self.values.get(path, (0, 0))
        return self.place(self._issue(path, position, message))

    def place(self, issue: ConfigIssue) -> ConfigIssue:
        """`issue` moved onto the character its message names ("column N: ..."), if its value is
        a one-line scalar: plain, or quoted with escapes, but without ${ENV} references."""
        match = _COLUMN_RE.match(issue.message)
        if match is None:
            return issue
        loc = next((loc for loc in self.scalars if _key_path(loc) == issue.key_path), None)
        node = self.scalars.get(loc) if loc is not None else None
        columns = _char_columns(node) if node is not None else None
        index = int(match.group(1)) - 1
        if node is None or columns is None or not 0 <= index < len(columns):
            return issue
        return replace(issue, line=node.start_mark.line + 1, column=columns[index] + 1)


def _mark(node: YamlNode) -> Position:
    return (node.start_mark.line, node.start_mark.column)


def _char_columns(node: ScalarNode) -> list[int] | None:
    """The 0-based file column of each character of a one-line scalar, and of its end."""
    start, end = node.start_mark, node.end_mark
    buffer = getattr(start, "buffer", None)
    if start.line != end.line or buffer is None or "$" in node.value:
        return None  # folded over lines, or changed by ${ENV} substitution
    raw = buffer[start.pointer : end.pointer]
    if node.style is None:
        return [start.column + i for i in range(len(raw) + 1)] if raw == node.value else None
    if node.style not in ("'", '"') or len(raw) < 2:
        return None
    columns, i = [], 1
    while i < len(raw) - 1:
        columns.append(start.column + i)
        if node.style == "'":
            i += 2 if raw[i : i + 2] == "''" else 1
        elif raw[i] == "\\":
            i += {"x": 4, "u": 6, "U": 10}.get(raw[i + 1], 2)
        else:
            i += 1
    columns.append(start.column + len(raw) - 1)  # the closing quote
    return columns if len(columns) == len(node.value) + 1 else None


# --------------------------------------------------------------------------------------------------
# Loading and cross-checking


F = TypeVar("F", ActorsFile, WatchesFile, ChannelsFile)


@dataclass
class _Loaded(Generic[F]):
    """One optional file: its model (None if it does not fit the schema) and positions (None if
    the file is missing)."""

    model: F | None
    source: _Source | None
    issues: list[ConfigIssue] = field(default_factory=list)


def _load(path: Path, model: type[F], env: Mapping[str, str]) -> _Loaded[F]:
    if not path.exists():
        return _Loaded(model(), None)
    source = _Source.read(path, env)
    try:
        loaded = load_yaml_model(path, model, env=env)
    except ConfigError as error:
        issues = error.issues
    else:
        # Not `config_problems`: a file with only these problems still has a model, so that
        # references into and out of it are checked in the same run.
        return _Loaded(loaded, source, [source.issue(p) for p in loaded.problems()])
    if source.duplicates:  # the loader names only the first duplicate, and not where it was first
        issues = [i for i in issues if not _is_duplicate_key(i)] + source.duplicates
    return _Loaded(None, source, [source.place(issue) for issue in issues])


def _is_duplicate_key(issue: ConfigIssue) -> bool:
    return issue.key_path == YAML_PATH and issue.message.startswith("duplicate key")


def _unknown(kind: str, name: str, known: Collection[str], hint: str) -> str:
    close = _closest(name, known)
    if close is not None:
        return f"unknown {kind} {name!r} (did you mean {close!r}?)"
    return f"unknown {kind} {name!r} ({hint})"


def _closest(name: str, known: Collection[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


@dataclass(frozen=True)
class _Known:
    """What the watches may refer to; None where the defining file has issues (not checked)."""

    actors: Mapping[str, ActorSpec] | None
    actors_hint: str
    channels: Collection[str] | None
    channels_hint: str
    outlets: Collection[str] | None
    tags: Collection[str] | None

    def actor_problem(self, name: str) -> str | None:
        if self.actors is None or name in self.actors:
            return None
        if _closest(name, self.actors) is None:  # maybe a spelling used as a name
            folded = name.casefold()
            for actor in self.actors.values():
                alias = next((a.text for a in actor.aliases if _fold(a.text) == folded), None)
                if alias is not None:
                    return f"unknown actor {name!r} ({alias!r} is an alias of {actor.name!r})"
        return _unknown("actor", name, self.actors, self.actors_hint)


def _fold(alias: str) -> str:
    return alias.removesuffix("*").casefold()


def _references(watches: WatchesFile, known: _Known) -> Iterator[Problem]:
    """Every name a watch uses that the other files do not define."""
    for name, watch in watches.watches.items():
        loc: Loc = ("watches", name)
        for i, actor in enumerate(watch.actors):
            if problem := known.actor_problem(actor):
                yield Problem((*loc, "actors", i), problem)
        items = [
            ((*loc, "groups", g, j), item)
            for g, group in enumerate(watch.groups)
            for j, item in enumerate(group)
        ]
        items += [((*loc, "exclude", i), item) for i, item in enumerate(watch.exclude)]
        for at, item in items:
            leaf = keyword_leaf(item, actors=True)
            if isinstance(leaf, ActorRef) and (problem := known.actor_problem(leaf.name)):
                yield Problem(at, problem)
        if watch.query is not None:
            for token in tokenize(watch.query):
                if token.kind is Kind.ACTOR and (problem := known.actor_problem(token.text)):
                    yield Problem((*loc, "query"), f"column {token.column}: {problem}")
        yield from _names(
            loc, "notify", watch.notify, "channel", known.channels, known.channels_hint
        )
        yield from _names(
            loc, "outlets", watch.outlets, "outlet", known.outlets, "not in feeds.yaml"
        )
        yield from _names(
            loc, "tags", watch.tags, "tag", known.tags, "no feed in feeds.yaml has it"
        )


def _names(
    loc: Loc, key: str, names: Sequence[str], kind: str, known: Collection[str] | None, hint: str
) -> Iterator[Problem]:
    if known is None:
        return
    for i, name in enumerate(names):
        if name not in known:
            yield Problem((*loc, key, i), _unknown(kind, name, known, hint))


def _hint(loaded: _Loaded[F], name: str) -> str:
    return f"not in {name}" if loaded.source is not None else f"there is no {name}"


def load_rules(
    config_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    feeds: Sequence[FeedSpec] | None = None,
) -> RuleSet:
    """Read `actors.yaml`, `watches.yaml` and `channels.yaml` from `config_dir` (each optional:
    a missing file defines nothing) and resolve them into a RuleSet of the enabled watches.

    With `feeds` (from `load_config`), a watch's outlets and tags must be among theirs. Raises
    ConfigError with the issues of all three files, cross-references included."""
    env = os.environ if env is None else env
    actors = _load(config_dir / ACTORS_FILE, ActorsFile, env)
    watches = _load(config_dir / WATCHES_FILE, WatchesFile, env)
    channels = _load(config_dir / CHANNELS_FILE, ChannelsFile, env)
    actor_specs = actors.model.specs() if actors.model is not None else None
    if watches.model is not None and watches.source is not None:
        known = _Known(
            actors=actor_specs,
            actors_hint=_hint(actors, ACTORS_FILE),
            channels=channels.model.channels if channels.model is not None else None,
            channels_hint=_hint(channels, CHANNELS_FILE),
            outlets={feed.outlet for feed in feeds} if feeds is not None else None,
            tags={tag for feed in feeds for tag in feed.tags} if feeds is not None else None,
        )
        watches.issues += map(watches.source.issue, _references(watches.model, known))
    channel_specs: dict[str, ChannelSpec] = {}
    if channels.model is not None and channels.source is not None:
        channel_specs, problems = channels.model.specs(config_dir)
        for spec in channel_specs.values():
            register_url(spec.url)  # its tokens never reach a log line (monitor.logs)
        channels.issues += map(channels.source.issue, problems)
    issues = [
        issue
        for loaded in (actors, watches, channels)
        for issue in sorted(loaded.issues, key=lambda issue: (issue.line, issue.column))
    ]
    if issues or actor_specs is None or watches.model is None:
        raise ConfigError(issues)
    specs = tuple(w.spec(name) for name, w in watches.model.watches.items() if w.enabled)
    return RuleSet(actors=actor_specs, watches=specs, channels=channel_specs)
