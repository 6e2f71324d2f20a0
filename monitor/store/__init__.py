"""Store stage: the only code that touches the database. Rows never leave this package."""

from __future__ import annotations

from monitor.store.ingest import EntryToStore, Ingested, NewArticle
from monitor.store.matching import ArticleToMatch, StoredMatch
from monitor.store.schedule import FeedHealth, FeedState, PolledOk
from monitor.store.store import ArticleView, Store

__all__ = [
    "ArticleToMatch",
    "StoredMatch",
    "ArticleView",
    "EntryToStore",
    "FeedHealth",
    "FeedState",
    "Ingested",
    "NewArticle",
    "PolledOk",
    "Store",
]
