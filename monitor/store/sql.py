"""SQL for many values at once that stays cheap on both backends.

psycopg turns a statement's %(name)s placeholders into PostgreSQL's $n in Python, and caches
that only for statements of at most 50 parameters: the IN lists and multi-row INSERTs of a
group of feeds (thousands of parameters) spent more time there than PostgreSQL spent running
them. On PostgreSQL a list is therefore one array parameter, and new rows go in by COPY, whose
rows psycopg formats in C. SQLite binds parameters in C and keeps plain IN lists; new rows go
to the driver's executemany.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Table,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
)


def one_of(c: Connection, column: Column[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """column IN values."""
    if c.dialect.name == "postgresql":
        return column == any_(_array(column, values))
    return column.in_(values)


def pairs_of(
    c: Connection, first: Column[Any], second: Column[Any], pairs: Sequence[tuple[Any, Any]]
) -> ColumnElement[bool]:
    """(first, second) IN pairs, each pair found through an index on (first, second)."""
    if c.dialect.name == "postgresql":
        firsts = _array(first, [a for a, _ in pairs])
        seconds = _array(second, [b for _, b in pairs])
        return tuple_(first, second).in_(select(func.unnest(firsts), func.unnest(seconds)))
    # One OR term per first value: SQLite looks each up in the index, where a row-value IN
    # made it scan the whole index.
    by_first: dict[Any, list[Any]] = {}
    for a, b in pairs:
        by_first.setdefault(a, []).append(b)
    return or_(*(and_(first == a, second.in_(bs)) for a, bs in by_first.items()))


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


def _array(column: Column[Any], values: Sequence[Any]) -> Any:
    # Imported here, like psycopg: a daemon on SQLite need not load PostgreSQL's dialect.
    from sqlalchemy.dialects.postgresql import ARRAY

    return bindparam(None, list(values), type_=ARRAY(column.type))
