"""Store stage: the only code that touches the database. Rows never leave this package."""

from __future__ import annotations

from monitor.store.store import (
    ArticleView,
    FeedHealth,
    FeedState,
    Ingested,
    NewArticle,
    Store,
)

__all__ = [
    "ArticleView",
    "FeedHealth",
    "FeedState",
    "Ingested",
    "NewArticle",
    "Store",
]
