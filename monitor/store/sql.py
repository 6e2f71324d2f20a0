"""SQL for many values at once that stays cheap on both backends.

psycopg turns a statement's %(name)s placeholders into PostgreSQL's $n in Python, and caches
that only for statements of at most 50 parameters: the IN lists and multi-row INSERTs of a
group of feeds (thousands of parameters) spent more time there than PostgreSQL spent running
them. On PostgreSQL a list is therefore one array parameter, and new rows go in by COPY, whose
rows psycopg formats in C. On SQLite a list is one JSON parameter read by json_each: SQLAlchemy
spent a third of the cold poll cycle coercing the thousands of values of per-feed IN lists one
by one and compiling a statement whose shape changed with every group of feeds; a JSON text
keeps the statement cached, and SQLite's limit on bound variables out of the way. New rows go
to the driver's executemany.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.types import Text


def one_of(c: Connection, column: Column[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """column IN values."""
    if c.dialect.name == "postgresql":
        return column == any_(_array(column, values))
    listed = func.json_each(_json(values)).table_valued("value")
    return column.in_(select(listed.c.value))


def pairs_of(
    c: Connection, first: Column[Any], second: Column[Any], pairs: Sequence[tuple[Any, Any]]
) -> ColumnElement[bool]:
    """(first, second) IN pairs, each pair found through an index on (first, second)."""
    if c.dialect.name == "postgresql":
        firsts = _array(first, [a for a, _ in pairs])
        seconds = _array(second, [b for _, b in pairs])
        return tuple_(first, second).in_(select(func.unnest(firsts), func.unnest(seconds)))
    # A row-value IN made SQLite scan the whole (first, second) index. Instead the pairs are
    # the outer loop of a join that looks each one up in it, and the rows are named by their
    # primary key.
    (key,) = first.table.primary_key.columns
    rows = _alias(first.table)
    listed = func.json_each(_json(pairs)).table_valued("value")
    found = (
        select(rows.c[key.name])
        .select_from(listed)
        .join(
            rows,
            (rows.c[first.name] == func.json_extract(listed.c.value, _FIRST))
            & (rows.c[second.name] == func.json_extract(listed.c.value, _SECOND)),
        )
    )
    return key.in_(found)


T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in slices of `size`: statements with one term an item stay bounded."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_rows(c: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys (column names), each value converted by its
    column's type as SQLAlchemy would (UTCDateTime refuses a naive datetime)."""
    names = list(rows[0])
    values = _converted(c, table, names, rows)
    if c.dialect.name != "postgresql":
        # The driver's executemany: SQLAlchemy's own spent more on each row's parameters than
        # SQLite spent inserting it.
        quote = c.dialect.identifier_preparer
        columns = ", ".join(quote.quote(n) for n in names)
        marks = ", ".join("?" * len(names))
        into = quote.format_table(table)
        c.exec_driver_sql(f"INSERT INTO {into} ({columns}) VALUES ({marks})", values)
        return
    from psycopg import sql

    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    driver = c.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(copy) as out:
        for row in values:
            out.write_row(row)


def _converted(
    c: Connection, table: Table, names: list[str], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    converters = []
    for name in names:
        convert = table.c[name].type.bind_processor(c.dialect)
        # Rows of one batch share values (its time, its feed): each is converted once.
        converters.append(None if convert is None else _once(convert))
    return [
        tuple(row[n] if f is None else f(row[n]) for n, f in zip(names, converters, strict=True))
        for row in rows
    ]


def _once(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    done: dict[Any, Any] = {}

    def converted(value: Any) -> Any:
        try:
            return done[value]
        except KeyError:
            done[value] = convert(value)
            return done[value]
        except TypeError:  # unhashable (a JSON value)
            return convert(value)

    return converted


# JSON paths as constants, not parameters: the planner sees what the join looks up
_FIRST: ColumnElement[str] = literal_column("'$[0]'")
_SECOND: ColumnElement[str] = literal_column("'$[1]'")


def _json(values: Sequence[Any]) -> Any:
    return bindparam(None, json.dumps(values), type_=Text())  # tuples become JSON arrays


@functools.cache
def _alias(table: FromClause) -> FromClause:
    """One alias per table: making one copies every column, each time."""
    return table.alias()


def _array(column: Column[Any], values: Sequence[Any]) -> Any:
    # Imported here, like psycopg: a daemon on SQLite need not load PostgreSQL's dialect.
    from sqlalchemy.dialects.postgresql import ARRAY

    return bindparam(None, list(values), type_=ARRAY(column.type))
