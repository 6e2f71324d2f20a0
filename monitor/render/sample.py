"""A realistic message built from the bundled sample outlets: for previews, `send-test`, and
checking a user's templates before a real message needs them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from monitor.demo.site import demo_outlets, demo_pages
from monitor.render.model import Entry, Kind, Message
from monitor.rules.snippet import best_snippet

BASE_URL = "https://news.example"
WATCH = "troop-buildup"
# The watch's terms as the rule spells them, and the spellings the sample text uses for each.
TERMS: dict[str, str] = {
    "@putin": r"Putin",
    "@russia": r"Russia|Russian|Russians|Moscow|Kremlin",
    "troops": r"troops?",
    "military buildup": r"(?:military |troop )?build-?up",
    "invasion": r"invasion|incursion",
}
_PATTERNS = [re.compile(rf"\b(?:{spelling})\b") for spelling in TERMS.values()]


def _entry(title: str, url: str, outlets: tuple[str, ...], published: datetime, text: str) -> Entry:
    hits = sorted(
        (m.start(), m.end(), term)
        for term, pattern in enumerate(_PATTERNS)
        for m in pattern.finditer(text)
    )
    found = sorted({term for _, _, term in hits})
    terms = tuple(list(TERMS)[term] for term in found)
    score = round(len(found) + len(hits) / 100, 2)
    return Entry(title, url, outlets, published, WATCH, score, terms, best_snippet(text, hits))


def sample_entries() -> tuple[Entry, ...]:
    """One entry per sample story that mentions a term, every outlet that carried it, by score
    then time, newest first."""
    names = {outlet.slug: outlet.name for outlet in demo_outlets()}
    stories: dict[str, list] = {}
    for page in demo_pages():
        stories.setdefault(page.corpus_id or page.path, []).append(page)
    entries = []
    for pages in stories.values():
        pages.sort(key=lambda page: page.published)
        first = pages[0]
        outlets = tuple(dict.fromkeys(names[page.outlet] for page in pages))
        entry = _entry(first.title, first.url(BASE_URL), outlets, first.published, first.text)
        if entry.terms:
            entries.append(entry)
    entries.sort(key=lambda e: (e.score, e.published or datetime.min.replace(tzinfo=UTC)))
    return tuple(reversed(entries))


def sample_message(
    kind: Kind = "digest", shown: int | None = None, timezone: str = "Europe/Kyiv"
) -> Message:
    """A digest of the sample stories, the first `shown` of them listed ("and N more" after)."""
    entries = sample_entries()
    listed = entries if shown is None else entries[:shown]
    return Message(
        kind=kind,
        route=WATCH,
        title=f"{WATCH}: {len(entries)} new stories",
        entries=listed,
        more=len(entries) - len(listed),
        timezone=timezone,
        created_at=datetime(2022, 1, 20, 8, 0, tzinfo=UTC),
    )
