"""Bounds on one config file, so that a hostile or mistaken file fails `monitor check` (and a
reload) with a clear error instead of hanging it (the hostile-input issue, "config attacks").

Two things made the loader hang: a file of many megabytes (ruamel's round-trip loader reads
about 0.1–0.2 MB a second, and keeps every key's position), and an alias bomb: ruamel builds an
alias as a reference to its anchor's value, so nine lines of `b: &b [*a, *a, …]` load at once,
but walking the document expands every reference, and those nine lines hold 10⁹ values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import MappingNode, SequenceNode

# A feeds.yaml of 10,000 outlets with a feed each is about 1.1 MB; a config past this size is
# a mistake (a log or a dump in the wrong place) or an attack.
MAX_BYTES = 2_000_000
# Brackets ([ ] and { }) open at once. ruamel's scanner rechecks every open level at each token,
# so 3,000 nested brackets took it 10–30 s before it ran out of stack; real configs nest two or
# three levels.
MAX_FLOW_DEPTH = 50
# Values (mappings, lists and scalars) in one file once its aliases are expanded. 10,000 outlets
# with a feed each are about 70,000.
MAX_VALUES = 500_000


def size_problem(path: Path) -> str | None:
    """Why `path` is too large to read, or None (also when it cannot be stat'ed: reading says)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size <= MAX_BYTES:
        return None
    return f"file is {size:,} bytes, larger than the {MAX_BYTES:,} a config file may have"


def nesting_problem(text: str) -> tuple[str, int, int] | None:
    """(message, 1-based line, column) of the bracket that opens more than MAX_FLOW_DEPTH levels
    of flow collections, or None. A plain scan that skips comments but not quoted text: it can
    only overcount, and needs fifty unclosed brackets inside strings to refuse a good file."""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        for column, char in enumerate(line, 1):
            if char == "#" and (column == 1 or line[column - 2].isspace()):
                break  # a comment runs to the end of the line
            if char in "[{":
                depth += 1
                if depth > MAX_FLOW_DEPTH:
                    return f"brackets nested more than {MAX_FLOW_DEPTH} deep", number, column
            elif char in "]}":
                depth = max(depth - 1, 0)
    return None


def expansion_problem(
    root: object, children: Callable[[object], Sequence[object]], limit: int = MAX_VALUES
) -> tuple[str, object] | None:
    """(message, the node at fault) when the document, its aliases expanded, holds more than
    `limit` values; None when it is fine.

    Each distinct node's expanded size is counted once, so this costs a walk of the document
    as written, not as expanded. `children` gives a node's children (none for a scalar)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()  # nodes being counted
    found: list[tuple[str, object]] = []

    def size(node: object) -> int:
        kids = children(node)
        if not kids:
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:  # an anchor holding its own alias: ruamel loads that alias as null
            return 1
        active.add(key)
        total = 1
        for kid in kids:
            total += size(kid)
            if total > limit:
                if not found:
                    message = (
                        f"its aliases expand to more than {limit:,} values (a YAML alias bomb?)"
                    )
                    found.append((message, node))
                break
        active.discard(key)
        sizes[key] = total
        return total

    size(root)
    return found[0] if found else None


def loaded_children(node: object) -> Sequence[object]:
    """Children of a value loaded by ruamel's round-trip loader (an alias is the same object)."""
    if isinstance(node, CommentedMap):
        return [*node.keys(), *node.values()]
    if isinstance(node, CommentedSeq):
        return node
    return ()


def composed_children(node: object) -> Sequence[object]:
    """Children of a composed YAML node (an alias is the same node object)."""
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return node.value
    return ()
