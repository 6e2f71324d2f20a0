"""Watch-rule query strings: a tokenizer and recursive-descent parser producing an immutable AST.

Grammar (operators are uppercase only; ``and``/``or``/``not``/``near`` are ordinary words)::

    query    := or_expr EOF
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := near_expr (["AND"] near_expr)*     juxtaposition means AND, so a NOT b = a AND NOT b
    near_expr:= not_expr ["NEAR/" distance not_expr]     distance: N >= 1 | sentence | paragraph
    not_expr := "NOT" not_expr | primary
    primary  := WORD | WORD* | "phrase" | @actor | "(" or_expr ")"

Precedence, tightest first: NOT, NEAR, AND, OR.

Terms:

* a word is letters/digits (any script), with ``'``, ``’``, ``-`` or ``.`` allowed *between* them
  (``build-up``, ``Kyiv's``, ``U.S``); a dotted abbreviation may end in a dot (``U.S.``);
* ``"a quoted phrase"`` matches consecutive words; punctuation inside it only separates words;
* ``sanction*`` is a prefix wildcard: one trailing ``*`` after at least 3 characters;
* ``@putin`` names an actor from actors.yaml (resolved later; only the name is kept here).

Rules beyond the grammar:

* a NEAR operand is a term, phrase, wildcard, actor, or a parenthesised OR-group of those;
  NEAR is not chained (``a NEAR/5 b NEAR/5 c``);
* the query must match something: NOT alone (``NOT sport``) or an OR alternative that is only NOT
  (``a OR NOT b``) is rejected, since it would match nearly every article.

Words keep the user's spelling; normalisation for matching (case, diacritics, apostrophes,
hyphens) is a separate, later step. Errors are ``QuerySyntaxError`` carrying a 1-based column and
no file/line, so the config layer can prefix its own location.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import Enum, auto
from typing import Literal, TypeAlias

__all__ = [
    "MIN_PREFIX_STEM",
    "ActorRef",
    "And",
    "Leaf",
    "Kind",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Proximity",
    "QuerySyntaxError",
    "Term",
    "flatten",
    "is_word_char",
    "parse_query",
    "terms",
    "to_query",
    "tokenize",
]

MIN_PREFIX_STEM = 3  # shorter stems ("fo*") would match a large part of the vocabulary
WORD_JOINERS = frozenset("'’-.")  # allowed between letters/digits inside one word
QUOTES = {'"': '"', "“": "”"}  # opening quote -> closing quote (curly quotes come from pasting)
NEAR_UNITS = ("sentence", "paragraph")
MAX_DEPTH = 50  # parentheses and NOTs nested; no real query comes close

Proximity: TypeAlias = int | Literal["sentence", "paragraph"]


# --- AST -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """A single word, as the user spelled it."""

    text: str


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must appear consecutively."""

    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Prefix:
    """A word starting with ``stem`` (the query spelling ``stem*``)."""

    stem: str


@dataclass(frozen=True, slots=True)
class ActorRef:
    """``@name``: an actor defined in actors.yaml, resolved to its aliases later."""

    name: str


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class Near:
    """``left`` and ``right`` within ``within`` words (either order) or one sentence/paragraph."""

    left: Node
    right: Node
    within: Proximity


Leaf: TypeAlias = Term | Phrase | Prefix | ActorRef
Node: TypeAlias = Term | Phrase | Prefix | ActorRef | And | Or | Not | Near
LEAF_TYPES = (Term, Phrase, Prefix, ActorRef)


class QuerySyntaxError(ValueError):
    """A query that cannot be parsed; ``str()`` reads ``column N: reason``."""

    def __init__(self, column: int, reason: str) -> None:
        super().__init__(f"column {column}: {reason}")
        self.column = column
        self.reason = reason

    def __reduce__(self) -> tuple[type[QuerySyntaxError], tuple[int, str]]:
        # the default would call cls(message) and fail: keep the error picklable
        return (type(self), (self.column, self.reason))


# --- tokenizer -------------------------------------------------------------------------------


class Kind(Enum):
    WORD = auto()
    PREFIX = auto()
    PHRASE = auto()
    ACTOR = auto()
    AND = auto()
    OR = auto()
    NOT = auto()
    NEAR = auto()
    LPAREN = auto()
    RPAREN = auto()
    END = auto()


OPERATOR_WORDS = {"AND": Kind.AND, "OR": Kind.OR, "NOT": Kind.NOT}
OPERAND_STARTS = frozenset({Kind.WORD, Kind.PREFIX, Kind.PHRASE, Kind.ACTOR, Kind.LPAREN})
BINARY_OPERATORS = frozenset({Kind.AND, Kind.OR, Kind.NEAR})
CONTINUES_AND = OPERAND_STARTS | {Kind.AND, Kind.NOT}  # juxtaposition means AND


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    column: int  # 1-based
    text: str = ""  # the word, stem, actor name or operator spelling
    words: tuple[str, ...] = ()  # PHRASE only
    within: Proximity = 0  # NEAR only

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is Kind.END:
            return "end of query"
        if self.kind is Kind.LPAREN:
            return "'('"
        if self.kind is Kind.RPAREN:
            return "')'"
        return self.text


WILDCARD_POSITION = "'*' must come at the end of a word: only prefix wildcards like sanction*"


def is_word_char(char: str) -> bool:
    # combining marks count, so decomposed accents and Indic/Arabic vowel signs stay in the word
    return char.isalnum() or unicodedata.category(char).startswith("M")


def scan_word(text: str, start: int) -> int:
    """End index of the word starting at ``start`` (which must be a word character)."""
    end = start
    while end < len(text):
        if is_word_char(text[end]):
            end += 1
        elif text[end] in WORD_JOINERS and end + 1 < len(text) and is_word_char(text[end + 1]):
            end += 2  # a joiner only counts when a letter/digit follows it
        else:
            break
    # "U.S." ends in a dot: keep it when the word is already a dotted abbreviation
    if end < len(text) and text[end] == "." and "." in text[start:end]:
        end += 1
    return end


def scan_near(text: str, start: int) -> tuple[Token, int]:
    """``NEAR/<distance>`` starting at ``start`` (the caller has seen ``NEAR``), and its end."""
    column = start + 1
    slash = start + len("NEAR")
    if slash >= len(text) or text[slash] != "/":
        raise QuerySyntaxError(
            column, "NEAR needs a distance: NEAR/<number of words>, NEAR/sentence or NEAR/paragraph"
        )
    end = slash + 1
    while end < len(text) and is_word_char(text[end]):
        end += 1
    distance = text[slash + 1 : end]
    within: Proximity
    if distance in NEAR_UNITS:
        within = "sentence" if distance == "sentence" else "paragraph"
    elif distance.isascii() and distance.isdigit() and int(distance) >= 1:
        within = int(distance)
    else:
        found = f"'{distance}'" if distance else "nothing"
        raise QuerySyntaxError(
            slash + 2,
            f"bad NEAR distance {found}: use a number of words (1 or more), sentence or paragraph",
        )
    return Token(Kind.NEAR, column, text=f"NEAR/{within}", within=within), end


def scan_phrase(text: str, start: int) -> tuple[Token, int]:
    """The quoted phrase opening at ``start``, and the index just past its closing quote."""
    closing = text.find(QUOTES[text[start]], start + 1)
    if closing < 0:
        raise QuerySyntaxError(start + 1, "unclosed quote opened here")
    words: list[str] = []
    index = start + 1
    while index < closing:
        char = text[index]
        if char == "*":
            raise QuerySyntaxError(index + 1, "wildcards are not allowed inside a phrase")
        if is_word_char(char):
            end = scan_word(text, index)
            words.append(text[index:end])
            index = end
        else:
            index += 1  # whitespace and punctuation only separate the words of a phrase
    if not words:
        raise QuerySyntaxError(start + 1, "empty phrase")
    return Token(Kind.PHRASE, start + 1, words=tuple(words)), closing + 1


def scan_actor(text: str, start: int) -> tuple[Token, int]:
    """``@name`` starting at ``start``; actor ids may also contain underscores."""
    end = start + 1
    while end < len(text) and (is_word_char(text[end]) or text[end] == "_"):
        end = scan_word(text, end) if is_word_char(text[end]) else end + 1
    if end == start + 1:
        raise QuerySyntaxError(start + 1, "expected an actor name after '@'")
    if end < len(text) and text[end] == "*":
        raise QuerySyntaxError(end + 1, "an actor reference cannot have a wildcard")
    return Token(Kind.ACTOR, start + 1, text=text[start + 1 : end]), end


def scan_bare(text: str, start: int) -> tuple[Token, int]:
    """A word, prefix wildcard or operator starting at ``start``."""
    end = scan_word(text, start)
    word = text[start:end]
    if end < len(text) and text[end] == "*":
        if end + 1 < len(text) and (is_word_char(text[end + 1]) or text[end + 1] == "*"):
            raise QuerySyntaxError(end + 2 if text[end + 1] == "*" else end + 1, WILDCARD_POSITION)
        if len(word) < MIN_PREFIX_STEM:
            raise QuerySyntaxError(
                start + 1, f"a wildcard needs at least {MIN_PREFIX_STEM} characters before '*'"
            )
        return Token(Kind.PREFIX, start + 1, text=word), end + 1
    if word == "NEAR":
        return scan_near(text, start)
    if word in OPERATOR_WORDS:
        return Token(OPERATOR_WORDS[word], start + 1, text=word), end
    return Token(Kind.WORD, start + 1, text=word), end


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an END token."""
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        if char in "()":
            tokens.append(Token(Kind.LPAREN if char == "(" else Kind.RPAREN, index + 1))
            index += 1
        elif char in QUOTES:
            token, index = scan_phrase(text, index)
            tokens.append(token)
        elif char == "@":
            token, index = scan_actor(text, index)
            tokens.append(token)
        elif is_word_char(char):
            token, index = scan_bare(text, index)
            tokens.append(token)
        elif char == "*":
            raise QuerySyntaxError(index + 1, WILDCARD_POSITION)
        else:
            raise QuerySyntaxError(index + 1, f"unexpected character '{char}'")
    tokens.append(Token(Kind.END, len(text) + 1))
    return tokens


# --- parser ----------------------------------------------------------------------------------


def is_positive(node: Node) -> bool:
    """Whether ``node`` requires something to be present, rather than only excluding."""
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(is_positive(item) for item in node.items)
    if isinstance(node, Or):
        return all(is_positive(item) for item in node.items)
    return True


def near_operand_problem(node: Node) -> str | None:
    """Why ``node`` cannot be a NEAR operand, or None if it can."""
    if isinstance(node, LEAF_TYPES):
        return None
    if isinstance(node, Or):
        return next(filter(None, map(near_operand_problem, node.items)), None)
    if isinstance(node, Not):
        return "NOT cannot be used inside a NEAR operand; to exclude a match write NOT (a NEAR/5 b)"
    if isinstance(node, And):
        return "AND cannot be used inside a NEAR operand; only OR-groups are allowed"
    return "NEAR cannot be nested inside a NEAR operand"


def flatten(kind: type[And] | type[Or], items: list[Node]) -> Node:
    """One node for ``items`` joined by ``kind``, splicing in children of the same kind."""
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


NOT_ONLY = "a query must match something; NOT alone only excludes"


class Parser:
    """Recursive descent over the token list: one method per grammar rule."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0
        self.depth = 0  # open parentheses and NOTs around the current position

    @property
    def current(self) -> Token:
        return self.tokens[self.position]

    def advance(self) -> Token:
        token = self.current
        self.position += 1
        return token

    def parse(self) -> Node:
        node = self.or_expr()
        if self.current.kind is Kind.RPAREN:
            raise QuerySyntaxError(self.current.column, "unexpected ')' with no matching '('")
        if not is_positive(node):
            raise QuerySyntaxError(1, NOT_ONLY)
        return node

    def or_expr(self) -> Node:
        columns = [self.current.column]
        alternatives = [self.and_expr()]
        while self.current.kind is Kind.OR:
            self.advance()
            columns.append(self.current.column)
            alternatives.append(self.and_expr())
        if len(alternatives) > 1:
            # "a OR NOT b" would match nearly every article: almost certainly not what was meant
            for alternative, column in zip(alternatives, columns, strict=True):
                if not is_positive(alternative):
                    raise QuerySyntaxError(column, NOT_ONLY)
        return flatten(Or, alternatives)

    def and_expr(self) -> Node:
        operands = [self.near_expr()]
        while self.current.kind in CONTINUES_AND:
            if self.current.kind is Kind.AND:
                self.advance()
            operands.append(self.near_expr())
        return flatten(And, operands)

    def near_expr(self) -> Node:
        left_column = self.current.column
        left = self.not_expr()
        if self.current.kind is not Kind.NEAR:
            return left
        near = self.advance()
        right_column = self.current.column
        right = self.not_expr()
        for operand, column in ((left, left_column), (right, right_column)):
            problem = near_operand_problem(operand)
            if problem:
                raise QuerySyntaxError(column, problem)
        if self.current.kind is Kind.NEAR:
            raise QuerySyntaxError(
                self.current.column, "NEAR cannot be chained; join proximity conditions with AND"
            )
        return Near(left, right, near.within)

    def not_expr(self) -> Node:
        if self.current.kind is Kind.NOT:
            self.nest(self.advance())
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.primary()

    def nest(self, token: Token) -> None:
        """One level deeper; a bound keeps a hostile query from exhausting Python's stack."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(token.column, f"nested more than {MAX_DEPTH} levels deep")

    def primary(self) -> Node:
        token = self.current
        if token.kind is Kind.LPAREN:
            return self.group()
        if token.kind not in OPERAND_STARTS:
            raise self.missing_operand(token)
        self.advance()
        if token.kind is Kind.WORD:
            return Term(token.text)
        if token.kind is Kind.PREFIX:
            return Prefix(token.text)
        if token.kind is Kind.ACTOR:
            return ActorRef(token.text)
        return Phrase(token.words)

    def group(self) -> Node:
        opening = self.advance()
        if self.current.kind is Kind.RPAREN:
            raise QuerySyntaxError(opening.column, "empty parentheses")
        self.nest(opening)
        node = self.or_expr()
        if self.current.kind is not Kind.RPAREN:  # only END can stop or_expr short of ')'
            raise QuerySyntaxError(opening.column, "unclosed parenthesis opened here")
        self.advance()
        self.depth -= 1
        return node

    def missing_operand(self, found: Token) -> QuerySyntaxError:
        """The error for ``found`` standing where a term was expected."""
        previous = self.tokens[self.position - 1] if self.position else None
        if previous is not None and previous.kind in BINARY_OPERATORS | {Kind.NOT}:
            return QuerySyntaxError(
                previous.column, f"expected a term after {previous.text}, found {found.describe()}"
            )
        if found.kind in BINARY_OPERATORS:
            before = "start of query" if previous is None else previous.describe()
            return QuerySyntaxError(
                found.column, f"expected a term before {found.text}, found {before}"
            )
        if found.kind is Kind.RPAREN:
            return QuerySyntaxError(found.column, "unexpected ')' with no matching '('")
        if previous is not None and previous.kind is Kind.LPAREN:  # found END
            return QuerySyntaxError(previous.column, "unclosed parenthesis opened here")
        return QuerySyntaxError(1, "empty query")


def parse_query(text: str) -> Node:
    """Parse a watch-rule query string; raises QuerySyntaxError (a ValueError) when invalid."""
    return Parser(tokenize(text)).parse()


# --- helpers over the AST --------------------------------------------------------------------


def terms(node: Node) -> list[Leaf]:
    """Every leaf of ``node`` (terms, phrases, wildcards, actors), left to right."""
    if isinstance(node, LEAF_TYPES):
        return [node]
    if isinstance(node, Not):
        return terms(node.item)
    if isinstance(node, Near):
        return terms(node.left) + terms(node.right)
    return [leaf for item in node.items for leaf in terms(item)]


# binding strength for rendering: a child binding more loosely than its parent needs parentheses
PRECEDENCE: dict[type, int] = {Or: 1, And: 2, Near: 3, Not: 4}
LEAF_PRECEDENCE = 5


def precedence(node: Node) -> int:
    return PRECEDENCE.get(type(node), LEAF_PRECEDENCE)


def render_child(child: Node, parent_precedence: int) -> str:
    # same-strength children are parenthesised too: it keeps NEAR operands and any unflattened
    # And/Or built by hand unambiguous, and parsing flattens them again
    text = to_query(child)
    return f"({text})" if precedence(child) <= parent_precedence else text


def to_query(node: Node) -> str:
    """Canonical query text for ``node``: ``parse_query(to_query(n)) == n`` for parsed ``n``."""
    if isinstance(node, Term):
        return node.text
    if isinstance(node, Prefix):
        return f"{node.stem}*"
    if isinstance(node, ActorRef):
        return f"@{node.name}"
    if isinstance(node, Phrase):
        return '"' + " ".join(node.words) + '"'
    if isinstance(node, Not):
        # NOT binds tightest, so only a stacked NOT may follow it without parentheses
        inner = to_query(node.item)
        return f"NOT {inner}" if precedence(node.item) >= PRECEDENCE[Not] else f"NOT ({inner})"
    if isinstance(node, Near):
        left = render_child(node.left, PRECEDENCE[Near])
        right = render_child(node.right, PRECEDENCE[Near])
        return f"{left} NEAR/{node.within} {right}"
    separator = " AND " if isinstance(node, And) else " OR "
    return separator.join(render_child(item, precedence(node)) for item in node.items)
