"""`monitor stories`: the stories ingest grouped, and why each article is in its story."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table


@click.command()
@click.argument("story_id", required=False, type=int)
@click.option("--since", help="Only stories with an article within this period, e.g. 2d.")
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def stories(
    ctx: click.Context, story_id: int | None, since: str | None, limit: int, as_json: bool
) -> None:
    """List stories (articles about one event, from every outlet), or one story's articles and
    why each was put in it."""
    from monitor.cli import _load, _store, _when, since_option  # the command group's helpers

    config = _load(ctx)
    since_at = since_option(since)
    store = _store(config)
    try:
        if story_id is not None:
            members = store.articles(story=story_id, limit=limit)
            if not members:
                raise click.ClickException(f"no story {story_id} (see `monitor stories`)")
        else:
            found = store.stories(since_at, limit)
    finally:
        store.close()
    if story_id is not None:
        members.sort(key=lambda a: a.id)
        if as_json:
            for a in members:
                row = {"id": a.id, "title": a.title, "outlets": list(a.outlets)}
                click.echo(json.dumps({**row, "why": a.story_reason}, ensure_ascii=False))
            return
        table = Table("id", "published", "outlets", "title / why", title=f"story {story_id}")
        table.columns[3].ratio = 1
        for a in members:
            why = f"[dim]{a.story_reason or 'placed before stories were kept'}[/dim]"
            table.add_row(
                str(a.id),
                _when(a.published_at or a.first_seen_at),
                ", ".join(a.outlets),
                f"{a.title}\n{why}",
            )
        Console().print(table)
        return
    if as_json:
        for s in found:
            row = {"id": s.id, "articles": s.articles, "outlets": list(s.outlets)}
            row |= {"title": s.title, "first": s.first_at.isoformat()}
            click.echo(json.dumps({**row, "last": s.last_at.isoformat()}, ensure_ascii=False))
        return
    table = Table("story", "latest", "articles", "outlets", "title", title=f"{len(found)} stories")
    table.columns[4].ratio = 1
    for s in found:
        table.add_row(str(s.id), _when(s.last_at), str(s.articles), ", ".join(s.outlets), s.title)
    Console().print(table)
