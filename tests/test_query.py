"""The watch-rule query language: parsing to an AST, syntax errors with columns, rendering back."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from monitor.rules import (
    ActorRef,
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    QuerySyntaxError,
    Term,
    parse_query,
    terms,
    to_query,
)

T = Term

VALID: list[tuple[str, Node]] = [
    ("russia", T("russia")),
    (
        '(russia OR putin) AND (sanction* OR "economic consequences") NOT sport',
        And(
            (
                Or((T("russia"), T("putin"))),
                Or((Prefix("sanction"), Phrase(("economic", "consequences")))),
                Not(T("sport")),
            )
        ),
    ),
    # juxtaposition is AND; lowercase operators are plain words
    ("russia ukraine", And((T("russia"), T("ukraine")))),
    ("war and peace", And((T("war"), T("and"), T("peace")))),
    ("not or near", And((T("not"), T("or"), T("near")))),
    # precedence: NOT > NEAR > AND > OR
    ("a OR b AND c", Or((T("a"), And((T("b"), T("c")))))),
    ("a AND b OR c", Or((And((T("a"), T("b"))), T("c")))),
    ("a b OR c d", Or((And((T("a"), T("b"))), And((T("c"), T("d")))))),
    ("a NOT b", And((T("a"), Not(T("b"))))),
    ("a AND NOT b", And((T("a"), Not(T("b"))))),
    ("NOT b a", And((Not(T("b")), T("a")))),
    ("a NOT (b OR c)", And((T("a"), Not(Or((T("b"), T("c"))))))),
    ("NOT (a NEAR/5 b) c", And((Not(Near(T("a"), T("b"), 5)), T("c")))),
    ("a b NEAR/3 c", And((T("a"), Near(T("b"), T("c"), 3)))),
    ("a NEAR/3 b OR c", Or((Near(T("a"), T("b"), 3), T("c")))),
    # flattening of same-kind nesting; single-item parentheses disappear
    ("a AND (b AND c)", And((T("a"), T("b"), T("c")))),
    ("(a OR b) OR (c OR d)", Or((T("a"), T("b"), T("c"), T("d")))),
    ("((a))", T("a")),
    ("a (b c) d", And((T("a"), T("b"), T("c"), T("d")))),
    # NEAR forms
    ("a NEAR/5 b", Near(T("a"), T("b"), 5)),
    ("a NEAR/05 b", Near(T("a"), T("b"), 5)),
    ("a NEAR/sentence b", Near(T("a"), T("b"), "sentence")),
    ("a NEAR/paragraph b", Near(T("a"), T("b"), "paragraph")),
    ('sanction* NEAR/10 "price cap"', Near(Prefix("sanction"), Phrase(("price", "cap")), 10)),
    (
        '(russia OR @putin) NEAR/sentence (troops OR "military buildup")',
        Near(
            Or((T("russia"), ActorRef("putin"))),
            Or((T("troops"), Phrase(("military", "buildup")))),
            "sentence",
        ),
    ),
    ("(a OR (b OR c)) NEAR/2 d", Near(Or((T("a"), T("b"), T("c"))), T("d"), 2)),
    # actor references
    ("@putin", ActorRef("putin")),
    ("@vladimir_putin sanctions", And((ActorRef("vladimir_putin"), T("sanctions")))),
    ("@putin OR @Зеленский", Or((ActorRef("putin"), ActorRef("Зеленский")))),
    # word shapes: apostrophes, hyphens, dots, other scripts, digits; spelling is kept
    ("Kyiv's", T("Kyiv's")),
    ("Kyiv’s", T("Kyiv’s")),
    ("build-up", T("build-up")),
    ("U.S. sanctions", And((T("U.S."), T("sanctions")))),
    ("Зеленский", T("Зеленский")),
    ("Zelensky Зеленский Зеленський", And((T("Zelensky"), T("Зеленский"), T("Зеленський")))),
    ("Café", T("Café")),
    ("Cafe\u0301", T("Cafe\u0301")),  # decomposed accent stays in the word
    ("习近平 G7 2024", And((T("习近平"), T("G7"), T("2024")))),
    ("RUSSIA", T("RUSSIA")),
    ("Nord-Stream*", Prefix("Nord-Stream")),
    ("ANDrew", T("ANDrew")),
    ("NOTE", T("NOTE")),
    # phrases: punctuation only separates words; curly quotes work too
    ('"economic consequences"', Phrase(("economic", "consequences"))),
    ('"Putin, Xi and Modi"', Phrase(("Putin", "Xi", "and", "Modi"))),
    ('"AND OR NOT"', Phrase(("AND", "OR", "NOT"))),
    ('"russia"', Phrase(("russia",))),
    ("“Kyiv's build-up”", Phrase(("Kyiv's", "build-up"))),
    ("  \ta\n  ", T("a")),
    ("abc*", Prefix("abc")),
]


@pytest.mark.parametrize(("query", "expected"), VALID, ids=[q for q, _ in VALID])
def test_valid_query_parses_to_expected_ast(query: str, expected: Node) -> None:
    assert parse_query(query) == expected


WILDCARD_POSITION = "'*' must come at the end of a word: only prefix wildcards like sanction*"
NOT_ONLY = "a query must match something; NOT alone only excludes"
BAD_DISTANCE = "use a number of words (1 or more), sentence or paragraph"

INVALID: list[tuple[str, int, str]] = [
    ("", 1, "empty query"),
    ("   ", 1, "empty query"),
    ('a "economic consequences', 3, "unclosed quote opened here"),
    ('"a" "b', 5, "unclosed quote opened here"),
    ("a AND (b OR c", 7, "unclosed parenthesis opened here"),
    ("(a OR (b)", 1, "unclosed parenthesis opened here"),
    ("a (", 3, "unclosed parenthesis opened here"),
    ("a) b", 2, "unexpected ')' with no matching '('"),
    (")", 1, "unexpected ')' with no matching '('"),
    ("AND a", 1, "expected a term before AND, found start of query"),
    ("OR a", 1, "expected a term before OR, found start of query"),
    ("NEAR/3 a", 1, "expected a term before NEAR/3, found start of query"),
    ("a (OR b)", 4, "expected a term before OR, found '('"),
    ("foo AND", 5, "expected a term after AND, found end of query"),
    ("a OR", 3, "expected a term after OR, found end of query"),
    ("a NOT", 3, "expected a term after NOT, found end of query"),
    ("a NEAR/5", 3, "expected a term after NEAR/5, found end of query"),
    ("a AND OR b", 3, "expected a term after AND, found OR"),
    ("a OR AND b", 3, "expected a term after OR, found AND"),
    ("a AND AND b", 3, "expected a term after AND, found AND"),
    ("(a AND) b", 4, "expected a term after AND, found ')'"),
    ("*foo", 1, WILDCARD_POSITION),
    ("a*b", 2, WILDCARD_POSITION),
    ("abc**", 5, WILDCARD_POSITION),
    ("fo*", 1, "a wildcard needs at least 3 characters before '*'"),
    ('"sanction* now"', 10, "wildcards are not allowed inside a phrase"),
    ("@put*", 5, "an actor reference cannot have a wildcard"),
    ("@ putin", 1, "expected an actor name after '@'"),
    ("a NEAR/0 b", 8, f"bad NEAR distance '0': {BAD_DISTANCE}"),
    ("a NEAR/x b", 8, f"bad NEAR distance 'x': {BAD_DISTANCE}"),
    ("a NEAR/Sentence b", 8, f"bad NEAR distance 'Sentence': {BAD_DISTANCE}"),
    ("a NEAR/ b", 8, f"bad NEAR distance nothing: {BAD_DISTANCE}"),
    (
        "a NEAR b",
        3,
        "NEAR needs a distance: NEAR/<number of words>, NEAR/sentence or NEAR/paragraph",
    ),
    ('a ""', 3, "empty phrase"),
    ('a " , "', 3, "empty phrase"),
    ("a ()", 3, "empty parentheses"),
    ("NOT sport", 1, NOT_ONLY),
    ("NOT a NOT b", 1, NOT_ONLY),
    ("(NOT a)", 1, NOT_ONLY),
    ("a OR NOT b", 6, NOT_ONLY),
    ("NOT a OR b", 1, NOT_ONLY),
    (
        "NOT a NEAR/5 b",
        1,
        "NOT cannot be used inside a NEAR operand; to exclude a match write NOT (a NEAR/5 b)",
    ),
    ("(a OR NOT b) NEAR/5 c", 7, NOT_ONLY),
    (
        "a NEAR/5 NOT b",
        10,
        "NOT cannot be used inside a NEAR operand; to exclude a match write NOT (a NEAR/5 b)",
    ),
    (
        "a NEAR/5 (b c)",
        10,
        "AND cannot be used inside a NEAR operand; only OR-groups are allowed",
    ),
    ("(a NEAR/2 b) NEAR/5 c", 1, "NEAR cannot be nested inside a NEAR operand"),
    (
        "a NEAR/5 b NEAR/5 c",
        12,
        "NEAR cannot be chained; join proximity conditions with AND",
    ),
    ("a, b", 2, "unexpected character ','"),
    ("-sport", 1, "unexpected character '-'"),
    ("near/5", 5, "unexpected character '/'"),
]


@pytest.mark.parametrize(("query", "column", "reason"), INVALID, ids=[q for q, _, _ in INVALID])
def test_invalid_query_reports_reason_and_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert (caught.value.column, caught.value.reason) == (column, reason)
    assert str(caught.value) == f"column {column}: {reason}"


def test_syntax_error_is_a_value_error_and_survives_pickling() -> None:
    with pytest.raises(QuerySyntaxError, match=r"^column 5: expected a term after AND") as caught:
        parse_query("foo AND")
    assert isinstance(caught.value, ValueError)
    restored = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(restored, QuerySyntaxError)
    assert (restored.column, restored.reason) == (caught.value.column, caught.value.reason)


def test_ast_nodes_are_immutable() -> None:
    node = parse_query("a OR b")
    assert isinstance(node, Or)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.items = ()  # type: ignore[misc]


@pytest.mark.parametrize("query", [q for q, _ in VALID])
def test_rendering_round_trips(query: str) -> None:
    parsed = parse_query(query)
    assert parse_query(to_query(parsed)) == parsed


CANONICAL = [
    ("russia  putin", "russia AND putin"),
    ("a NOT b", "a AND NOT b"),
    ("(a OR b) c", "(a OR b) AND c"),
    ("a OR b c", "a OR b AND c"),
    ("NOT (a OR b) c", "NOT (a OR b) AND c"),
    ("NOT (a NEAR/5 b) c", "NOT (a NEAR/5 b) AND c"),
    ("(a OR @b) NEAR/paragraph cat*", "(a OR @b) NEAR/paragraph cat*"),
    ("abc* NEAR/05 “x  y”", 'abc* NEAR/5 "x y"'),
    ('"Putin, Xi"', '"Putin Xi"'),
]


@pytest.mark.parametrize(("query", "canonical"), CANONICAL, ids=[q for q, _ in CANONICAL])
def test_to_query_renders_canonical_text(query: str, canonical: str) -> None:
    assert to_query(parse_query(query)) == canonical


def test_terms_lists_every_leaf_in_order() -> None:
    node = parse_query(
        '(russia OR @putin) NEAR/sentence (troops OR "military buildup") NOT sport* NOT sport'
    )
    assert terms(node) == [
        T("russia"),
        ActorRef("putin"),
        T("troops"),
        Phrase(("military", "buildup")),
        Prefix("sport"),
        T("sport"),
    ]


def test_terms_of_a_single_leaf_is_that_leaf() -> None:
    assert terms(parse_query("@putin")) == [ActorRef("putin")]


def test_nesting_is_bounded_with_a_clear_error_not_a_recursion_error() -> None:
    assert parse_query("(" * 50 + "troops" + ")" * 50) == Term("troops")
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("(" * 5000 + "troops" + ")" * 5000)
    assert str(info.value) == "column 51: nested more than 50 levels deep"
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("troops " + "NOT " * 60 + "sport")
    assert info.value.reason == "nested more than 50 levels deep"
