"""`monitor status`: the store at a glance, for someone who looks only when something is wrong."""

from __future__ import annotations

import json
from datetime import datetime

import click

from monitor.config import Config, duration_text
from monitor.logs import redact
from monitor.store import Store
from monitor.store.upkeep import StoreStatus, status


def show_status(store: Store, config: Config, now: datetime, as_json: bool) -> None:
    s = status(store.engine, texts=True)
    url = redact(config.settings.database_url(config.config_dir))
    if as_json:
        click.echo(json.dumps(_as_json(s, url)))
        return
    for label, value in _lines(s, url, config, now):
        click.echo(f"{label + ':':<22}{value}")


def _lines(s: StoreStatus, url: str, config: Config, now: datetime) -> list[tuple[str, str]]:
    retention = config.settings.retention
    text_kept = duration_text(retention.text) if retention.text else "until the article goes"
    pending, failed = s.outbox.get("pending", 0), s.outbox.get("failed", 0)
    return [
        ("database", f"{url} ({s.backend})"),
        ("size", _size(s.size_bytes)),
        ("articles", f"{s.articles} ({s.articles_without_text} without text)"),
        ("retention", f"articles {duration_text(retention.articles)}, text {text_kept}"),
        ("matches", str(s.matches)),
        ("feeds", f"{s.feeds_active} active, {s.feeds_failing} failing"),
        ("last poll", _ago(s.last_poll_at, now)),
        ("last success", _ago(s.last_success_at, now)),
        ("deliveries", f"{pending} pending, {failed} failed, {s.outbox.get('sent', 0)} sent"),
    ]


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    if n < 1024**2:
        return f"{n / 1024:.0f} KB"
    return f"{n / 1024**2:.1f} MB" if n < 1024**3 else f"{n / 1024**3:.2f} GB"


def _ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    seconds = max(0, int((now - at).total_seconds()))
    return f"{at.isoformat(timespec='seconds')} ({seconds // 60}m{seconds % 60:02d}s ago)"


def _as_json(s: StoreStatus, url: str) -> dict[str, object]:
    return {
        "database": url,
        "backend": s.backend,
        "size_bytes": s.size_bytes,
        "articles": s.articles,
        "articles_without_text": s.articles_without_text,
        "matches": s.matches,
        "feeds_active": s.feeds_active,
        "feeds_failing": s.feeds_failing,
        "last_poll_at": s.last_poll_at.isoformat() if s.last_poll_at else None,
        "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None,
        "outbox": s.outbox,
    }
