"""The `monitor` command: one click group, one subcommand per thing a user does."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from monitor import logs
from monitor.config import (
    Config,
    ConfigError,
    ConfigIssue,
    load_config,
    load_rules,
    parse_duration,
)
from monitor.domain import utcnow
from monitor.rules.spec import RuleSet
from monitor.store import ArticleView, FeedHealth, Store
from monitor.store.delivery import OutboxRow

err_console = Console(stderr=True)


def _default_config_dir() -> Path:
    env = os.environ.get("MONITOR_CONFIG")
    if env:
        return Path(env)
    return Path("config") if Path("config/feeds.yaml").exists() else Path("/etc/monitor")


@click.group()
@click.option(
    "--config",
    "-c",
    "config_dir",
    type=click.Path(path_type=Path),
    default=_default_config_dir,
    show_default="$MONITOR_CONFIG, ./config, /etc/monitor",
    help="Directory holding monitor.yaml and feeds.yaml.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="One line per event on stderr, as text or JSON (default: monitor.yaml's logging.format).",
)
@click.pass_context
def main(ctx: click.Context, config_dir: Path, verbose: int, log_format: str | None) -> None:
    """Poll news outlets' feeds into a clean, de-duplicated store."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logs.setup(level, log_format or "text")
    sys.excepthook = _log_uncaught  # a crash's traceback goes through the secret filter too
    # One line per scheduler tick and per HTTP request would bury what matters in the journal.
    # APScheduler also warns whenever a tick is skipped because the previous one (waiting for
    # the database thread) is still running: harmless, since the next tick claims what is due.
    logging.getLogger("apscheduler").setLevel(max(level, logging.ERROR))
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))
    ctx.obj = config_dir
    ctx.meta["log_format"] = log_format


def _log_uncaught(kind: type[BaseException], err: BaseException, tb: Any) -> None:
    logging.getLogger("monitor").critical("unexpected error", exc_info=(kind, err, tb))


def since_option(since: str | None) -> datetime | None:
    """The moment a --since duration ("7d", "12h") reaches back to, or None without one."""
    if not since:
        return None
    try:
        return utcnow() - parse_duration(since)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--since") from err


def _load(ctx: click.Context) -> Config:
    """The config, or the exact file:line:column messages and exit status 1."""
    try:
        return load_config(ctx.obj)
    except ConfigError as err:
        click.echo(str(err), err=True)
        click.echo(f"monitor: configuration in {ctx.obj} is invalid", err=True)
        ctx.exit(1)
        raise AssertionError from err  # unreachable: ctx.exit raises


def _store(config: Config) -> Store:
    """The store, or one line saying why the database cannot be opened and exit status 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.store.upkeep import cannot_open

    url = config.settings.database_url(config.config_dir)
    try:
        return Store.open(url)
    except (SQLAlchemyError, OSError) as err:
        click.echo(f"monitor: {cannot_open(url, err)}", err=True)
        sys.exit(1)


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate every configuration file; exit non-zero with file:line:column on any error."""
    # Both loaders run before anything is reported, so one check shows every file's issues.
    issues: list[ConfigIssue] = []
    config = None
    try:
        config = load_config(ctx.obj)
    except ConfigError as err:
        issues += err.issues
    try:
        rules = load_rules(ctx.obj, feeds=config.feeds if config else None)
    except ConfigError as err:
        issues += err.issues
    else:
        if config is not None:
            issues += _cross_file_issues(config, rules)
    template_problem = _check_templates(ctx.obj)
    if issues or config is None or template_problem:
        if issues or config is None:
            click.echo(str(ConfigError(issues)), err=True)
        if template_problem:
            click.echo(template_problem, err=True)
        click.echo(f"monitor: configuration in {ctx.obj} is invalid", err=True)
        ctx.exit(1)
        return
    outlets = {f.outlet for f in config.feeds}
    click.echo(
        f"{config.config_dir}: OK ({len(outlets)} outlets, {len(config.feeds)} feeds), "
        f"{len(rules.actors)} actors, {len(rules.watches)} watches"
    )


def _check_templates(config_dir: Path) -> str | None:
    """Render a sample message in every format with the user's templates (config/templates/):
    a broken template, or one reaching outside its folder, is reported now, not at 7 am."""
    from monitor.deliver import user_templates

    folder = user_templates(config_dir)
    if folder is None:
        return None
    from monitor.render import RenderError, render
    from monitor.render.sample import sample_message

    for fmt in ("text", "email", "markdown", "slack"):
        try:
            render(sample_message(), fmt, templates=folder)
        except RenderError as err:
            return f"{folder}: {err}"
    return None


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon: poll every feed on its schedule until SIGTERM or SIGINT."""
    config = _load(ctx)
    if ctx.meta.get("log_format") is None:  # before the imports below log anything
        logs.set_format(config.settings.logging.format)
    _load_rules(ctx, config)  # the daemon reads them again; this is for the message and exit 1
    from monitor.daemon import StartupError
    from monitor.daemon import run as run_daemon

    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    try:
        run_daemon(config)
    except StartupError as err:
        click.echo(f"monitor: {err}", err=True)  # the line `systemctl status` shows
        ctx.exit(1)


@main.command()
@click.option("--once", is_flag=True, required=True, help="Run one cycle and exit.")
@click.option("--feed", "feeds", multiple=True, help="Only this feed (repeatable).")
@click.option("--due-only", is_flag=True, help="Respect the schedule and backoff.")
@click.pass_context
def poll(ctx: click.Context, once: bool, feeds: tuple[str, ...], due_only: bool) -> None:
    """Poll feeds once and print what happened (use `monitor run` to keep polling)."""
    from monitor.daemon import extractor_pool, fetch_limits
    from monitor.fetch import Fetcher
    from monitor.pipeline import CycleSummary, Runtime, activate_rules, poll_cycle

    config = _load(ctx)
    ruleset = _load_rules(ctx, config)
    unknown = sorted(set(feeds) - {f.name for f in config.feeds})
    if unknown:
        raise click.UsageError(f"unknown feed {', '.join(unknown)}; see `monitor feeds`")
    store = _store(config)
    store.sync_feeds(config.feeds, utcnow(), retire=False)
    pool = extractor_pool(config)
    wanted = list(feeds) or [f.name for f in config.feeds]

    async def cycle() -> CycleSummary:
        async with Fetcher(fetch_limits(config)) as fetcher:
            rt = Runtime(store, fetcher, config.settings, utcnow, pool)
            rt.rules = activate_rules(store, ruleset, utcnow())
            return await poll_cycle(rt, wanted, not due_only, limit=len(wanted))

    try:
        summary = asyncio.run(cycle())
    finally:
        if pool is not None:
            pool.shutdown()
        store.close()
    for outcome in summary.outcomes:
        if outcome.error:
            click.echo(f"error   {outcome.feed}: {outcome.error}", err=True)
        for problem in outcome.problems:
            click.echo(f"warning {outcome.feed}: {problem}", err=True)
    skipped = sorted(set(wanted) - {o.feed for o in summary.outcomes})
    if skipped:
        why = "not due" if due_only else "leased by a running worker"
        click.echo(f"skipped {len(skipped)} ({why}): {', '.join(skipped)}", err=True)
    click.echo(summary.line())


@main.command()
@click.option("--search", "-s", help="Case-insensitive text to find in title or text.")
@click.option("--outlet", help="Only articles this outlet carried.")
@click.option("--since", help="Only articles first seen within this period, e.g. 7d, 12h.")
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, with text.")
@click.pass_context
def articles(
    ctx: click.Context,
    search: str | None,
    outlet: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List and search stored articles, newest first."""
    config = _load(ctx)
    since_at = since_option(since)
    if outlet and outlet not in {f.outlet for f in config.feeds}:
        raise click.BadParameter(f"no outlet {outlet!r} in feeds.yaml", param_hint="--outlet")
    store = _store(config)
    try:
        found = store.articles(search=search, outlet=outlet, since=since_at, limit=limit)
    finally:
        store.close()
    if as_json:
        for a in found:
            click.echo(json.dumps(_article_json(a), ensure_ascii=False))
        return
    Console().print(articles_table(found))


def articles_table(found: list[ArticleView]) -> Table:
    table = Table(
        "id", "published", "outlets", "title", "words", "flags", title=f"{len(found)} articles"
    )
    table.columns[3].ratio = 1  # the title takes the room the terminal has
    for a in found:
        flags = ",".join(
            f
            for f, on in (
                ("backlog", a.backlog),
                (f"rev{a.revision}", a.revision > 1),
                ("feed-text", a.text_source == "feed"),
            )
            if on
        )
        table.add_row(
            str(a.id),
            _when(a.published_at or a.first_seen_at),
            ", ".join(a.outlets),
            a.title,
            str(len(a.text.split())),
            flags,
        )
    return table


def _article_json(a: ArticleView) -> dict[str, object]:
    return {
        "id": a.id,
        "title": a.title,
        "url": a.canonical_url,
        "author": a.author,
        "published": a.published_at.isoformat() if a.published_at else None,
        "first_seen": a.first_seen_at.isoformat(),
        "language": a.language,
        "outlets": list(a.outlets),
        "revision": a.revision,
        "backlog": a.backlog,
        "text_source": a.text_source,
        "story": a.story_id,
        "story_reason": a.story_reason,
        "text": a.text,
    }


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def feeds(ctx: click.Context, as_json: bool) -> None:
    """Show every feed's health: last success, last error, failures, next poll."""
    config = _load(ctx)
    store = _store(config)
    store.sync_feeds(config.feeds, utcnow(), retire=False)
    try:
        health = store.feed_health()
    finally:
        store.close()
    if as_json:
        for h in health:
            click.echo(
                json.dumps(
                    {
                        k: (v.isoformat() if isinstance(v, datetime) else v)
                        for k, v in h.__dict__.items()
                    }
                )
            )
        return
    Console().print(feeds_table(health, utcnow()))


def feeds_table(health: list[FeedHealth], now: datetime) -> Table:
    table = Table(
        "feed",
        "state",
        "last success",
        "fails",
        "next poll",
        "articles",
        "last error / problem",
        title=f"{len(health)} feeds",
    )
    table.columns[0].no_wrap = True
    table.columns[6].ratio = 1
    for h in health:
        state = (
            "retired"
            if not h.active
            else "new"
            if h.last_polled_at is None
            else "failing"
            if h.consecutive_failures
            else "ok"
        )
        style = {"failing": "red", "ok": "green"}.get(state, "")
        note = (h.last_error if h.consecutive_failures else h.last_problem) or ""
        table.add_row(
            h.name,
            f"[{style}]{state}[/]" if style else state,
            _ago(h.last_success_at, now),
            str(h.consecutive_failures),
            _ago(h.next_poll_at, now),
            str(h.articles),
            note.removeprefix(f"{h.url}: "),
        )  # the row already names the feed
    return table


@main.command("test-rules")
@click.option("--watch", "-w", "watches", multiple=True, help="Only this watch (repeatable).")
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="Replay stored articles first seen within this period (e.g. 12h, 30d), or 'all'.",
)
@click.option("--article", "article_id", type=int, help="Replay one stored article by its id.")
@click.option("--url", help="Fetch and extract this page, and test it instead of the store.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Test a saved page (.html) or a text file (.txt: first line is the title).",
)
@click.option("--explain", is_flag=True, help="Say why each watch did or did not match.")
@click.option("--limit", "-n", default=20, show_default=True, help="Articles shown at most.")
@click.pass_context
def test_rules(
    ctx: click.Context,
    watches: tuple[str, ...],
    since: str,
    article_id: int | None,
    url: str | None,
    path: Path | None,
    explain: bool,
    limit: int,
) -> None:
    """Replay watches against stored articles or one page and show what would match."""
    from monitor import replay as rp

    config = _load(ctx)
    ruleset = _load_rules(ctx, config)
    from monitor.rules.compiler import compile_rules

    names = tuple(w.name for w in ruleset.watches)
    unknown = [w for w in watches if w not in names]
    if unknown:
        raise click.BadParameter(
            f"no watch {', '.join(unknown)} (watches: {', '.join(names) or 'none'})",
            param_hint="--watch",
        )
    if sum(x is not None for x in (url, path, article_id)) > 1:
        raise click.UsageError("give at most one of --url, --file and --article")
    replay = rp.Replay(compile_rules(ruleset), watches or names, explain)
    console = Console(highlight=False)
    if url is not None or path is not None:
        try:
            if url is not None:
                doc, title = rp.page_from_url(url, config)
            else:
                assert path is not None
                doc, title = rp.page_from_file(path, config)
        except Exception as err:  # a page that cannot be fetched or read: say which and why
            raise click.ClickException(f"{url or path}: {err}") from err
        item = replay.one(doc, title or "(no title)", str(url or path), (), None)
        rp.print_examined(console, item, show_text=True)
        if not item.matches and not explain:
            console.print("  [dim](run with --explain to see why each watch did not match)[/]")
        return
    since_at = None if since == "all" else utcnow() - _duration(since, "--since")
    store = _store(config)
    shown = 0
    try:
        for item in rp.stored(replay, store, since_at, article_id, err_console):
            if (item.matches or explain) and shown < limit:
                rp.print_examined(console, item, show_text=explain)
                shown += 1
    except LookupError as err:
        raise click.BadParameter(str(err), param_hint="--article") from err
    finally:
        store.close()
    console.print(rp.counts_table(replay))


def _cross_file_issues(config: Config, rules: RuleSet) -> list[ConfigIssue]:
    """What no one file can know is wrong: monitor.yaml naming channels of channels.yaml."""
    from monitor.config.channels import feed_health_issues

    path = config.config_dir / "monitor.yaml"
    return feed_health_issues(path, config.settings.delivery.feed_health, rules.channels)


def _load_rules(ctx: click.Context, config: Config) -> RuleSet:
    """The watch rules, or their file:line:column messages and exit status 1."""
    from monitor.config.rules import load_rules

    try:
        rules = load_rules(config.config_dir, feeds=config.feeds)
        if cross := _cross_file_issues(config, rules):
            raise ConfigError(cross)
        return rules
    except ConfigError as err:
        click.echo(str(err), err=True)
        click.echo(f"monitor: watch rules in {ctx.obj} are invalid", err=True)
        ctx.exit(1)
        raise AssertionError from err  # unreachable: ctx.exit raises


def _duration(text: str, option: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=option) from err


@main.command("send-test")
@click.argument("channel")
@click.pass_context
def send_test(ctx: click.Context, channel: str) -> None:
    """Send a sample digest to CHANNEL and report success or the exact error."""
    from dataclasses import asdict

    from monitor.notify import send
    from monitor.render import render
    from monitor.render.sample import sample_message

    config = _load(ctx)
    rules = _load_rules(ctx, config)
    spec = rules.channels.get(channel)
    if spec is None:
        known = ", ".join(rules.channels) or "none"
        raise click.BadParameter(
            f"no channel {channel!r} (channels: {known})", param_hint="CHANNEL"
        )
    message = sample_message()
    content = {"format": spec.format, **asdict(render(message, spec.format)), "key": "send-test"}
    result = send(spec, content)
    if result.ok:
        click.echo(f"{channel}: sent a sample {spec.format} message ({message.title!r})")
        return
    how = "permanent: fix the channel" if result.permanent else "temporary: retry later"
    click.echo(f"{channel}: not sent ({how}): {logs.redact(result.error or '')}", err=True)
    ctx.exit(1)


@main.command()
@click.option("--status", type=click.Choice(["pending", "sent", "failed", "discarded"]))
@click.option("--limit", "-n", default=30, show_default=True)
@click.option("--retry", "retry_id", type=int, help="Send this failed message again.")
@click.option("--discard", "discard_id", type=int, help="Give up on this message.")
@click.pass_context
def outbox(
    ctx: click.Context,
    status: str | None,
    limit: int,
    retry_id: int | None,
    discard_id: int | None,
) -> None:
    """List pending, failed and recent deliveries; retry or discard one."""
    config = _load(ctx)
    store = _store(config)
    try:
        for outbox_id, new in ((retry_id, "pending"), (discard_id, "discarded")):
            if outbox_id is None:
                continue
            if not store.set_outbox_status(outbox_id, new, utcnow()):
                raise click.BadParameter(f"no message #{outbox_id} in the outbox")
            verb = "queued again" if new == "pending" else "discarded"
            click.echo(f"message #{outbox_id} {verb}")
            return
        rows = store.outbox(status, limit)
    finally:
        store.close()
    Console().print(outbox_table(rows, utcnow()))


def outbox_table(rows: list[OutboxRow], now: datetime) -> Table:
    table = Table(
        "id",
        "created",
        "channel",
        "watch",
        "kind",
        "status",
        "tries",
        "next",
        "title / error",
        title=f"{len(rows)} messages",
    )
    table.columns[8].ratio = 1
    for r in rows:
        style = {"failed": "red", "sent": "green", "pending": "yellow"}.get(r.status, "")
        note = r.title + (f"\n[red]{logs.redact(r.last_error)}[/]" if r.last_error else "")
        table.add_row(
            str(r.id),
            _when(r.created_at),
            r.channel,
            r.route,
            r.kind,
            f"[{style}]{r.status}[/]" if style else r.status,
            str(r.attempts),
            _ago(r.next_attempt_at, now) if r.status == "pending" else "-",
            note,
        )
    return table


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The store at a glance: size, articles, feeds, last poll, deliveries pending."""
    from monitor.status import show_status

    config = _load(ctx)
    store = _store(config)
    try:
        show_status(store, config, utcnow(), as_json)
    finally:
        store.close()


@main.command()
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=None,
    help="SQLite file to fill (default: a new temporary folder).",
)
def demo(db: Path | None) -> None:
    """Serve the bundled sample outlets on loopback and run the pipeline against them."""
    from monitor.demo.run import run_demo

    sys.exit(run_demo(db, Console()))


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else "-"


def _ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "-"
    delta = now - at
    future = delta < timedelta(0)
    seconds = int(abs(delta.total_seconds()))
    text = (
        f"{seconds}s"
        if seconds < 120
        else f"{seconds // 60}m"
        if seconds < 7200
        else f"{seconds // 3600}h"
        if seconds < 172800
        else f"{seconds // 86400}d"
    )
    return f"in {text}" if future else f"{text} ago"


def _register_more_commands() -> None:
    from monitor.cli_stories import stories

    main.add_command(stories)


_register_more_commands()
