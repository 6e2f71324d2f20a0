"""Watch rules: the query-string language (parser, AST, canonical rendering)."""

from monitor.rules.query import (
    ActorRef,
    And,
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
    parse_query,
    terms,
    to_query,
)

__all__ = [
    "ActorRef",
    "And",
    "Leaf",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Proximity",
    "QuerySyntaxError",
    "Term",
    "parse_query",
    "terms",
    "to_query",
]
