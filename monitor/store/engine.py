"""Connecting to the store's database, and the schema's first creation (before migrations)."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.exc import DBAPIError

from monitor.store.schema import HEAD_REVISION, metadata

# PostgreSQL's answers to two transactions that got in each other's way (deadlock_detected,
# serialization_failure): nothing is wrong with the data, and the same work done again succeeds.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def connect(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        _create_private_file(Path(url.removeprefix("sqlite:///")).expanduser())
    # The pipeline runs store calls on a thread of their own while commands run them on the
    # main thread; each connection is used by one thread at a time (the pool hands it out).
    sqlite = url.startswith("sqlite")
    connect_args = {"check_same_thread": False} if sqlite else {}
    engine = create_engine(url, pool_pre_ping=not sqlite, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _create_private_file(path: Path) -> None:
    """Creates the SQLite file (and its folder) readable by its owner only, if it is missing.

    The store holds every article, match and outbox message, and the outbox holds rendered
    messages; SQLite gives its -wal and -shm files the database file's permissions. A file
    that exists already keeps the permissions its owner chose."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def is_transient(err: DBAPIError) -> bool:
    """Whether the database refused this only because of a concurrent transaction."""
    return getattr(err.orig, "sqlstate", None) in TRANSIENT_SQLSTATES


_VERSION_TABLE = "alembic_version"


def create_if_empty(c: Connection) -> bool:
    """An empty database gets every table and the newest revision's stamp; False if not empty."""
    if inspect(c).get_table_names():
        return False
    metadata.create_all(c)
    stamp = Table(
        _VERSION_TABLE,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),  # as Alembic names it
    )
    stamp.create(c)
    c.execute(stamp.insert().values(version_num=HEAD_REVISION))
    return True


def revision(c: Connection) -> str | None:
    if not inspect(c).has_table(_VERSION_TABLE):
        return None
    return c.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()


def serialise_schema_changes(c: Connection) -> None:
    """Workers starting together must not both create tables or insert the same feeds.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: every transaction already holds the
    write lock from its first statement (BEGIN IMMEDIATE, see _engine)."""
    if c.dialect.name == "postgresql":
        c.exec_driver_sql("SELECT pg_advisory_xact_lock(7206318)")


def _sqlite_begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is locked"
    # when another process wrote in between (WAL snapshot rule); taking the write lock up front
    # makes a second process (`monitor poll --once` beside `monitor run`) wait its turn instead.
    # Store._read connections never write, so they read a snapshot without the lock.
    read_only = conn.get_execution_options().get("monitor_read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" event issue BEGIN IMMEDIATE
    cur = dbapi_conn.cursor()
    # WAL lets readers (monitor articles) run while the daemon writes; busy_timeout makes a
    # second process wait for the write lock instead of failing at once.
    # A new database frees deleted pages on `PRAGMA incremental_vacuum` (daily maintenance);
    # on an existing one this is a no-op until a full VACUUM.
    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
