"""The disk fills under a running `monitor run`, then frees up (issue 7, item 5): writes fail
with a clear error, the daemon keeps running, and once there is room again every article is
stored once, every alert is sent once, and the SQLite file passes its integrity check.

The database lives on a small tmpfs that is shrunk to what it holds and later grown again
(`mount -o remount,size=`), a real full filesystem. Where mounting is not permitted, a file size
limit set on the running daemon (RLIMIT_FSIZE through prlimit(2)) stands in for it; SQLite then
says "disk I/O error" rather than "database or disk is full"."""

from __future__ import annotations

import json
import os
import random
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from monitor.demo.server import LoopbackServer, Route
from tests.chaos import story_text
from tests.support import Item, rss
from tests.test_daemon import stop, wait_for, write_config

_STORY = re.compile(r"/story(\d+)\.html")


def start_without_sigxfsz(config: Path, log: IO[str]) -> subprocess.Popen[str]:
    """`monitor run` logging to a file (as to journald: never a pipe nobody reads, which
    would block it), with SIGXFSZ ignored so a write past a size limit fails with EFBIG (as
    ENOSPC would on a full disk) instead of killing the process."""
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "-c", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN),
    )


class Disk:
    """Where the database lives, and how to fill and free it under the running daemon."""

    def __init__(self, folder: Path, read_only: bool = False) -> None:
        folder.mkdir()
        self.folder, self.read_only, self.tmpfs = folder, read_only, False
        if not read_only:
            mount = ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)]
            self.tmpfs = subprocess.run(mount, capture_output=True).returncode == 0

    def fill(self, pid: int) -> None:
        if self.read_only:  # the database and its log become immutable (chattr +i): even the
            # daemon's open descriptors are refused (a read-only remount is refused while files
            # are open for writing)
            self._chattr("+i")
        elif self.tmpfs:  # shrink the filesystem to what is used, plus a few pages
            used = sum(p.stat().st_size for p in self.folder.iterdir())
            self._remount(f"size={used // 1024 + 64}k")
        else:  # no file of the daemon's may grow more than 64 KB (the soft limit only:
            # raising a hard limit again needs CAP_SYS_RESOURCE)
            limit = max(p.stat().st_size for p in self.folder.iterdir()) + 64 * 1024
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def free(self, pid: int) -> None:
        if self.read_only:
            self._chattr("-i")
        elif self.tmpfs:
            self._remount("size=64m")
        else:
            unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, unlimited)

    def unmount(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.folder)], check=True)

    def _chattr(self, flag: str) -> None:
        files = [str(p) for p in self.folder.iterdir() if p.name in ("m.db", "m.db-wal")]
        subprocess.run(["chattr", flag, *files], check=True)

    def _remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.folder)], check=True)


def stored(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return [url for (url,) in c.execute("SELECT canonical_url FROM articles")]


def told(server: LoopbackServer) -> list[int]:
    return [
        int(n)
        for hit in server.hits
        if hit.path == "/hook"
        for n in _STORY.findall(json.loads(hit.body)["message"])
    ]


@pytest.mark.parametrize(
    ("read_only", "error"),
    [(False, "database or disk is full"), (True, "disk I/O error")],
    ids=["disk full", "read-only"],
)
def test_a_database_that_refuses_writes_is_reported_and_nothing_is_lost_once_it_takes_them(
    tmp_path, read_only, error
):
    rng = random.Random(3)
    disk = Disk(tmp_path / "disk", read_only)
    try:
        db = disk.folder / "m.db"
        with LoopbackServer() as server:
            items: list[Item] = []

            def publish(n: int) -> None:
                # long pages, so the database outgrows the limit within a few articles
                paragraphs = story_text(n, rng) + story_text(n + 1000, rng) * 20
                server.routes[f"/story{n}.html"] = Route(
                    body=("<html><body>" + "".join(f"<p>{p}</p>" for p in paragraphs)).encode()
                    + b"</body></html>"
                )
                items.append(Item(f"s{n}", f"Report {n}", server.url(f"/story{n}.html")))
                server.routes["/feed.xml"] = Route(body=rss(items))

            server.routes["/feed.xml"] = Route(body=rss([]))
            server.routes["/hook"] = Route(body=b"{}")
            config = write_config(
                tmp_path / "cfg",
                f"sqlite:///{db}",
                {"outlet": server.url("/feed.xml")},
                interval="1s",
            )
            with (config / "monitor.yaml").open("a") as f:
                f.write("delivery:\n  group_interval: 1s\n  retry_base: 1s\n  retry_max: 2s\n")
            (config / "channels.yaml").write_text(
                f"channels:\n  hook:\n    url: json://127.0.0.1:{server.port}/hook\n"
                "    max_entries: 1000\n"
            )
            (config / "watches.yaml").write_text(
                "watches:\n  troops:\n    query: troops OR lavrov\n    notify: [hook]\n"
                "    group_wait: 0s\n"
            )
            log = tmp_path / "daemon.log"
            with log.open("w") as log_file:
                proc = start_without_sigxfsz(config, log_file)
            try:
                wait_for(lambda: server.count("/feed.xml") >= 1)  # the first poll: backlog only
                for n in range(3):
                    publish(n)
                wait_for(lambda: sorted(set(told(server))) == [0, 1, 2], timeout=60)

                disk.fill(proc.pid)
                for n in range(3, 12):
                    publish(n)
                time.sleep(6)  # several polls and ticks against the refusing database
                assert proc.poll() is None, "the daemon died of a full disk"

                # Room again: everything arrives, once.
                disk.free(proc.pid)
                wait_for(lambda: sorted(set(told(server))) == list(range(12)), timeout=90)
                time.sleep(2)
            finally:
                code, _ = stop(proc)
                err = log.read_text()
        assert code == 0, err
        if not (disk.tmpfs or disk.read_only):
            error = "disk I/O error"  # what SQLite makes of EFBIG under a size limit
        refused = re.escape(f"(sqlite3.OperationalError) {error}")
        # said in one line (by the feed's poll, or the tick that claims feeds), no traceback
        assert re.search(
            r"(feed outlet: not stored, will retry|tick: the database refuses it, will retry): "
            + refused,
            err,
        ), err
        assert "Traceback" not in err
        if "the database refuses it" in err:
            assert "tick: the database works again" in err
        urls = [u for u in stored(db) if "/story" in u]
        assert sorted(urls) == sorted({server.url(f"/story{n}.html") for n in range(12)})
        assert sorted(told(server)) == list(range(12))  # every alert once
        with sqlite3.connect(db) as c:
            assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:  # a mount left behind would break pytest's clean-up of old temp dirs
        disk.unmount()
