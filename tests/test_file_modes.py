"""The SQLite store is created readable by its owner only (the hostile-input issue, item 8):
its file, the -wal and -shm files SQLite adds beside it, and a folder the store had to make."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from monitor.store import Store
from tests.support import feed_spec


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # the usual default: files 0644, folders 0755
    yield
    os.umask(old)


def test_a_new_database_and_its_folder_are_owner_only_whatever_the_umask(
    tmp_path: Path, clock, loose_umask
) -> None:
    db = tmp_path / "state" / "monitor" / "monitor.db"
    store = Store.open(f"sqlite:///{db}")
    try:
        store.sync_feeds([feed_spec("a", "http://127.0.0.1:9/a.xml")], clock())  # a write: WAL
        companions = [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(p.exists() for p in companions)
        assert {p.name: _mode(p) for p in [db, *companions]} == {
            "monitor.db": 0o600,
            "monitor.db-wal": 0o600,
            "monitor.db-shm": 0o600,
        }
        assert _mode(db.parent) == 0o700
    finally:
        store.close()


def test_an_existing_database_keeps_the_permissions_its_owner_gave_it(
    tmp_path: Path, clock, loose_umask
) -> None:
    db = tmp_path / "monitor.db"
    Store.open(f"sqlite:///{db}").close()
    db.chmod(0o640)  # e.g. a group that runs `monitor articles`
    store = Store.open(f"sqlite:///{db}")
    store.sync_feeds([feed_spec("a", "http://127.0.0.1:9/a.xml")], clock())
    store.close()
    assert _mode(db) == 0o640
