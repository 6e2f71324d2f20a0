"""Fuzzing the query language and the matcher behind it: any query text parses or raises
QuerySyntaxError with a column inside it; a parsed query prints back to itself, compiles or
is refused with RuleCompileError, and matches any article text without an exception."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.rules.compiler import RuleCompileError, compile_rules
from monitor.rules.matcher import Document, match
from monitor.rules.query import QuerySyntaxError, parse_query, to_query
from monitor.rules.spec import RuleSet, WatchSpec
from tests.fuzz.strategies import hostile_text
from tests.test_matcher import ACTORS

QUERY_PIECES = [
    "AND", "OR", "NOT", "NEAR/3", "NEAR/0", "NEAR/sentence", "NEAR/paragraph", "NEAR/x",
    "NEAR/99999999999999999999", "(", ")", '"', "*", "@putin", "@nobody", "@", "troops",
    "sanction*", "build-up", "U.S.", "Zelenskyy’s", '"economic consequences"', " ", "-", "'",
]  # fmt: skip
QUERY = st.one_of(
    st.lists(st.sampled_from(QUERY_PIECES), max_size=12).map(" ".join),
    st.lists(st.sampled_from(QUERY_PIECES), max_size=12).map("".join),
    hostile_text(4),
)


@given(QUERY)
@example("(" * 5000)  # deep nesting: an error, not a RecursionError
@example("NOT " * 5000 + "x")
@example('"' + "a " * 3 + "*")
def test_any_query_text_parses_or_says_which_column_is_wrong(text: str) -> None:
    try:
        node = parse_query(text)
    except QuerySyntaxError as error:
        assert 1 <= error.column <= len(text) + 1, error
        return
    assert parse_query(to_query(node)) == node


ARTICLE = hostile_text(16)


@given(QUERY, ARTICLE, ARTICLE)
def test_a_parsed_query_compiles_and_matches_any_article_without_an_exception(
    query: str, title: str, text: str
) -> None:
    try:
        rules = compile_rules(RuleSet(ACTORS, (WatchSpec("w", parse_query(query)),)))
    except (QuerySyntaxError, RuleCompileError):
        return
    for found in match(rules, Document(title, text)):
        for hit in found.hits:
            field_text = title if hit.field == "title" else text
            assert 0 <= hit.start < hit.end <= len(field_text)
