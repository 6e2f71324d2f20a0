"""`monitor test-rules`: replay watches against stored articles or one page, and show what
would match, with the terms highlighted and, on request, why a watch did not match.

Nothing is written: the replay reads the store and the rules, and prints."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from monitor.config import Config
from monitor.domain import FeedEntry
from monitor.rules.active import document
from monitor.rules.compiler import CompiledRules
from monitor.rules.explain import Explanation, explain
from monitor.rules.matcher import Document, Match, match
from monitor.rules.snippet import Snippet
from monitor.store import ArticleToMatch, Store

REPLAY_BATCH = 500
HIGHLIGHT = "bold black on yellow"


@dataclass(frozen=True)
class Examined:
    """One article, what matched, and (with --explain) why each selected watch did or did not."""

    title: str
    where: str  # URL, file or "article 12"
    outlets: tuple[str, ...]
    when: datetime | None
    matches: tuple[Match, ...]
    explanations: tuple[Explanation, ...] = ()


@dataclass
class Replay:
    rules: CompiledRules
    watches: tuple[str, ...]  # the watches replayed (all, or those asked for)
    explain: bool = False
    examined: int = 0
    per_watch: Counter[str] = field(default_factory=Counter)

    def one(
        self, doc: Document, title: str, where: str, outlets: Sequence[str], when: datetime | None
    ) -> Examined:
        self.examined += 1
        wanted = set(self.watches)
        found = tuple(m for m in match(self.rules, doc) if m.watch in wanted)
        self.per_watch.update(m.watch for m in found)
        why = tuple(explain(self.rules, doc, w) for w in self.watches) if self.explain else ()
        return Examined(title, where, tuple(outlets), when, found, why)


def stored(
    replay: Replay, store: Store, since: datetime | None, article_id: int | None, console: Console
) -> Iterator[Examined]:
    """Replay over the stored articles first seen since `since` (or the one with `article_id`),
    with a progress bar on the console when it is a terminal."""
    total = 1 if article_id is not None else store.count_articles(since)
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("articles"),
        TimeRemainingColumn(),
    )
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        task = bar.add_task("replay", total=total)
        for article in _articles(store, since, article_id):
            yield replay.one(
                document(article),
                article.title,
                f"article {article.id}",
                sorted(article.outlets),
                article.first_seen_at,
            )
            bar.advance(task)


def _articles(
    store: Store, since: datetime | None, article_id: int | None
) -> Iterator[ArticleToMatch]:
    if article_id is not None:
        batch = store.articles_to_replay(None, article_id - 1, 1)
        if not batch or batch[0].id != article_id:
            raise LookupError(f"no stored article with id {article_id}")
        yield batch[0]
        return
    after = 0
    while batch := store.articles_to_replay(since, after, REPLAY_BATCH):
        yield from batch
        after = batch[-1].id


def page_from_file(path: Path, config: Config) -> tuple[Document, str]:
    """A saved page (HTML, extracted like a fetched one) or a plain-text file (first line is the
    title); returns the document and its title."""
    data = path.read_bytes()
    if path.suffix.lower() in (".txt", ".text", ".md"):
        text = data.decode("utf-8", errors="replace")
        title, _, body = text.strip().partition("\n")
        return Document(title.strip(), body.strip()), title.strip()
    return _extracted(data, path.resolve().as_uri(), config)


def page_from_url(url: str, config: Config) -> tuple[Document, str]:
    """Fetch a page with the monitor's own fetcher and limits, and extract it."""
    from monitor.daemon import fetch_limits
    from monitor.fetch import PAGE_ACCEPT, Fetcher

    async def get() -> bytes:
        async with Fetcher(fetch_limits(config)) as fetcher:
            return (await fetcher.fetch(url, accept=PAGE_ACCEPT)).body

    return _extracted(asyncio.run(get()), url, config)


def _extracted(html: bytes, url: str, config: Config) -> tuple[Document, str]:
    from monitor.extract import extract

    entry = FeedEntry(
        guid=url, link=url, title="", author=None, published=None, content="", entry_hash=""
    )
    ex = extract(html, url, entry, frozenset(), config.settings.extract.min_chars)
    return Document(ex.title, ex.text, language=ex.language), ex.title


# --------------------------------------------------------------------------------------------------
# Printing


def print_examined(console: Console, item: Examined, show_text: bool) -> None:
    when = item.when.strftime("%Y-%m-%d %H:%M") if item.when else ""
    outlets = ", ".join(item.outlets)
    about = " · ".join(x for x in (item.where, outlets, when) if x)
    console.print(f"[bold]{escape(item.title)}[/]  [dim]{escape(about)}[/]")
    for m in item.matches:
        console.print(f"  [green]✓ {escape(m.watch)}[/] score {m.score:g}: {escape(_terms(m))}")
        console.print("    " + highlighted(m.snippet))
    for why in item.explanations:
        mark = "[green]✓[/]" if why.matched else "[red]✗[/]"
        console.print(f"  {mark} {escape(why.watch)}: {escape(why.reason)}")
        for line in why.lines:
            console.print("      " + escape(line))
    if show_text and not item.matches and not item.explanations:
        console.print("  [dim]no watch matched[/]")


def _terms(m: Match) -> str:
    """Each matched term with what the article wrote: @russia (Russia, Moscow) ×3."""
    seen: dict[str, list[str]] = {}
    for hit in m.hits:
        seen.setdefault(hit.term, []).append(
            f"{hit.text}" + (" [title]" if hit.field == "title" else "")
        )
    parts = []
    for term, spellings in seen.items():
        distinct = list(dict.fromkeys(spellings))
        more = ", …" if len(distinct) > 3 else ""
        parts.append(f"{term} ({', '.join(distinct[:3])}{more}) ×{len(spellings)}")
    return "; ".join(parts)


def highlighted(snippet: Snippet) -> str:
    """Rich markup for the snippet with each mark highlighted (the text itself escaped)."""
    out, at = [], 0
    for start, end in snippet.marks:
        out += [
            escape(snippet.text[at:start]),
            f"[{HIGHLIGHT}]",
            escape(snippet.text[start:end]),
            "[/]",
        ]
        at = end
    out.append(escape(snippet.text[at:]))
    return "".join(out)


def counts_table(replay: Replay) -> Table:
    table = Table("watch", "articles matched", title=f"{replay.examined} articles replayed")
    for name in replay.watches:
        table.add_row(name, str(replay.per_watch.get(name, 0)))
    return table
