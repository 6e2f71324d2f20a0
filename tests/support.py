"""Builders for tests: feeds and pages made from the corpus, a runtime from real parts."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

from monitor.config import FeedSpec, Settings
from monitor.fetch import Fetcher, FetchLimits
from monitor.netguard import parse_networks
from monitor.pipeline import Runtime
from monitor.store import Store

# The PostgreSQL server CI and developers have; tests and benchmarks make databases on it.
PG_ADMIN_URL = os.environ.get(
    "MONITOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

CORPUS = Path(__file__).resolve().parent.parent / "monitor" / "demo" / "corpus"


def corpus_paragraphs(number: str, start: int = 0, count: int = 6) -> list[str]:
    """Story paragraphs of a corpus article (long lines only, so page chrome is left out)."""
    (path,) = CORPUS.glob(f"{number}_*.txt")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    story = [ln for ln in lines if len(ln) > 120 and "RFE/RL journalists" not in ln]
    return story[start : start + count]


@dataclass(frozen=True)
class Item:
    guid: str | None
    title: str
    link: str | None
    published: datetime | None = None
    description: str = ""


def rss(items: Sequence[Item], title: str = "Test outlet") -> bytes:
    """An RSS 2.0 document."""
    parts = [
        f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://127.0.0.1/</link>"
    ]
    for it in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(it.title)}</title>")
        if it.link:
            parts.append(f"<link>{escape(it.link)}</link>")
        if it.guid:
            parts.append(f'<guid isPermaLink="false">{escape(it.guid)}</guid>')
        if it.published:
            parts.append(f"<pubDate>{format_datetime(it.published, usegmt=True)}</pubDate>")
        if it.description:
            parts.append(f"<description>{escape(it.description)}</description>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def page(title: str, paragraphs: Sequence[str], canonical: str | None = None) -> bytes:
    """A plain article page with a little chrome around the story."""
    head = f'<link rel="canonical" href="{escape(canonical)}">' if canonical else ""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html><head><title>{escape(title)}</title>{head}</head><body>"
        f"<nav><a href='/'>Home</a> <a href='/world'>World</a></nav>"
        f"<article><h1>{escape(title)}</h1>{body}</article>"
        f"<footer>Copyright Test Outlet</footer></body></html>"
    ).encode()


LOOPBACK = ("127.0.0.0/8", "::1")  # what tests allow the fetcher to reach (see monitor.netguard)


def settings(**sections: dict[str, Any]) -> Settings:
    """Defaults tuned for loopback tests (short timeouts, inline extraction), plus overrides."""
    base: dict[str, dict[str, Any]] = {
        "polling": {
            "connect_timeout": "1s",
            "read_timeout": "1s",
            "total_timeout": "3s",
            "backoff_base": "1m",
            "backoff_max": "1h",
            "jitter": 0.0,
            "allow_networks": LOOPBACK,  # the test servers listen on 127.0.0.1
        },
        "extract": {"workers": 1, "min_chars": 200},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings.model_validate(base)


def feed_spec(name: str, url: str, outlet: str | None = None) -> FeedSpec:
    return FeedSpec(
        name=name,
        outlet=outlet or name.split("/")[0],
        outlet_name=(outlet or name).upper(),
        url=url,
        interval=timedelta(minutes=10),
        language="en",
        tags=(),
    )


@contextlib.asynccontextmanager
async def runtime(
    store: Store,
    clock: Any,
    cfg: Settings | None = None,
    owner: str = "test-worker",
    extractor: Executor | None = None,
) -> AsyncIterator[Runtime]:
    cfg = cfg or settings()
    p = cfg.polling
    limits = FetchLimits(
        connect_timeout=p.connect_timeout.total_seconds(),
        read_timeout=p.read_timeout.total_seconds(),
        total_timeout=p.total_timeout.total_seconds(),
        max_bytes=p.max_bytes,
        max_redirects=p.max_redirects,
        allow_networks=parse_networks(p.allow_networks),
    )
    async with Fetcher(limits, clock=clock) as fetcher:
        yield Runtime(store, fetcher, cfg, clock, extractor, owner)


@contextlib.contextmanager
def pg_database(prefix: str = "monitor_test") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped (even if still connected to) afterwards."""
    from sqlalchemy import create_engine, make_url, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
