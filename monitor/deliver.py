"""The delivery stage, after match: queue what the routes owe their channels (grouping,
digests, feed health; see monitor.dispatch), then send the outbox (monitor.sender)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from monitor.dispatch import Planner, plan_all, plan_feed_health
from monitor.pipeline import Runtime
from monitor.sender import Send, send_due


def deliver_plan(rt: Runtime, planner: Planner | None = None) -> list[int]:
    """Queue the messages the routes owe their channels now (immediate groups and digests):
    with a planner (the daemon's, kept from tick to tick), only the routes that may owe one;
    without, every route."""
    if rt.rules is None:
        return []
    active, now, settings = rt.rules, rt.clock(), rt.settings.delivery
    render = functools.partial(_render, templates=rt.templates)
    if planner is None:
        queued = plan_all(rt.store, active.rules, settings, now, render, active.since)
    else:
        queued = planner.plan(rt.store, active.rules, settings, now, render, active.since)
    if settings.feed_health:  # feeds failing for long, and their recoveries
        channels = active.rules.channels
        health = functools.partial(
            plan_feed_health, channels=channels, defaults=settings, now=now, render=render
        )
        queued += rt.store.plan(lambda c: health(c))
    return queued


def _render(message: Any, fmt: str, templates: Path | None = None) -> Any:
    from monitor.render import render  # Jinja2 is loaded once something is to be sent

    return render(message, fmt, templates=templates)  # type: ignore[arg-type]


def user_templates(config_dir: Path) -> Path | None:
    """config/templates/, when the user made one."""
    folder = config_dir / "templates"
    return folder if folder.is_dir() else None


def deliver_send(rt: Runtime, send: Send | None = None) -> tuple[int, int]:
    """Send what the outbox has due; returns (sent, not sent this time)."""
    if rt.rules is None:
        return 0, 0
    if send is None:
        from monitor.notify import send as apprise_send  # apprise is large: loaded when used

        send = apprise_send
    channels = rt.rules.rules.channels
    settings = rt.settings.delivery
    return send_due(rt.store, channels, settings, rt.owner, rt.clock(), send, clock=rt.clock)
