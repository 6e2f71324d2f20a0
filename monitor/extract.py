"""The extract stage: an article's clean text and metadata from its page, else from its feed entry.

Pure and module-level so the pipeline can run it in a ProcessPoolExecutor.

trafilatura settings, and why (precision over recall: a missing sentence costs little, a share
widget or legal footer in the text costs a false alert or a missed duplicate):

- ``favor_precision=True``: prunes ``<header>``, link-dense blocks and trailing headings, and
  skips the baseline rescue that would dump the whole uncleaned page when the main pass is short.
- ``fast=True``: no readability/justext comparison; those generic extractors are tuned for recall
  and bring chrome back. A short page result falls back to the feed content instead.
- ``include_comments/tables/images/links/formatting=False``: reader comments, layout tables and
  markup are noise for alerting and fingerprints.
- ``deduplicate=False``: trafilatura's duplicate filter is a process-wide LRU cache, so results
  would depend on what the worker saw before; recurring lines are handled per outlet instead.
- ``with_metadata=False``: trafilatura's metadata pass also looks for categories, tags, site
  name and licence, and runs its costly author heuristics on a copy of the whole tree; that was
  a fifth of the stage's time. ``_metadata`` takes only what an article needs from trafilatura's
  parts: meta tags and JSON-LD, the title heuristics, and the author heuristics or a (cheap)
  htmldate search only when neither the page's meta tags nor the feed entry give one.
- ``prune_xpath``: figures and their captions go before extraction (captions are not story text;
  figures holding more than two paragraphs are kept, in case a site wraps its body in one).
  trafilatura 2.3 drops figures itself without images; the prune keeps that true across versions.

Captions also escape figures: sites print them again as a paragraph (RFE/RL's caption appears
twice, Press TV prints a stale alt text). So any line equal to an image's alt text or to a
figcaption is dropped, unless it equals the page's description (CMSs that fill alt with the lede).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime

import lxml.html
from htmldate import find_date
from lxml import etree
from lxml.html import HtmlElement
from trafilatura import bare_extraction
from trafilatura.metadata import examine_meta, extract_author, extract_meta_json, extract_title
from trafilatura.utils import load_html

from monitor import boilerplate
from monitor.canonical import canonical_url
from monitor.domain import MAX_AUTHOR, MAX_TITLE, Extracted, FeedEntry, cut

_PRUNE = ["//figure[count(.//p) < 3]", "//figcaption"]
_BLOCKS = frozenset(
    {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "dt", "dd"}
    | {"section", "article", "header", "footer", "ul", "ol", "table", "figure", "br", "hr"}
)
# Typographic quotes unified to ASCII. Two regex passes, not str.translate: translate with a
# mapping runs a Python-level lookup per character and was a tenth of the extract stage's time.
_SINGLE_QUOTES = re.compile("[‘’‚‛′`´]")
_DOUBLE_QUOTES = re.compile("[“”„‟″«»]")
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def normalise_text(text: str) -> str:
    """Text as compared for exact duplicates: NFKC, casefolded, quotes unified, spaces collapsed."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    text = _DOUBLE_QUOTES.sub('"', _SINGLE_QUOTES.sub("'", text))
    return " ".join(text.casefold().split())


def content_hash(text: str) -> str:
    """The exact-duplicate key: sha256 hex of normalise_text(text)."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


def extract(
    html: bytes | str | None,
    url: str,
    entry: FeedEntry | None,
    learned: frozenset[str] = frozenset(),
    min_chars: int = 200,
) -> Extracted:
    """The article's text and metadata: from the page when it yields min_chars, else the feed.

    The feed's content is used when the page is missing or unparseable or its cleaned text is
    shorter than min_chars, and only if it gives more text. ``lines`` are the paragraphs after
    seed patterns, captions and the repeated headline are gone but before ``learned`` is applied,
    so the caller can keep counting them; ``text`` is ``lines`` without learned boilerplate.
    Title, author and canonical URL come from the page (title falls back to the entry's, and is
    the entry's when the feed's text is used); ``published`` prefers the entry's date.
    """
    page = _page(html, url, entry) if html else None
    entry_title = _squash(entry.title) if entry else ""
    title = (page.title if page else None) or entry_title
    kept = _drop_title(page.lines if page else [], title)
    text = "\n".join(boilerplate.drop_learned(kept, learned))
    source = "page"
    if len(text) < min_chars and entry is not None:
        # a page this short is an error page, a consent wall or a stub: trust the feed's title
        feed_title = entry_title or title
        feed_kept = _drop_title(_seeded(_html_lines(entry.content)), feed_title)
        feed_text = "\n".join(boilerplate.drop_learned(feed_kept, learned))
        if len(feed_text) > len(text):
            title, kept, text, source = feed_title, feed_kept, feed_text, "feed"
    published = _aware(entry.published) if entry and entry.published else None
    return Extracted(
        title=title,
        text=text,
        author=(page.author if page else None) or (entry.author if entry else None),
        published=published or (page.published if page else None),
        canonical_url=page.canonical if page else None,
        language=page.language if page else None,
        source=source,
        lines=tuple(kept),
    )


class _Page:
    __slots__ = ("author", "canonical", "language", "lines", "published", "title")

    def __init__(self) -> None:
        self.title: str | None = None
        self.author: str | None = None
        self.published: datetime | None = None
        self.canonical: str | None = None
        self.language: str | None = None
        self.lines: list[str] = []


def _page(html: bytes | str, url: str, entry: FeedEntry | None) -> _Page | None:
    """Metadata and seed-cleaned lines of a page; None when it is not HTML at all."""
    try:
        tree = load_html(html)
    except (TypeError, ValueError):
        return None
    if tree is None:
        return None
    page = _Page()
    page.canonical = _canonical(tree, url)
    page.language = _language(tree)
    page.published = _meta_date(tree)
    captions = _captions(tree)
    try:  # a third-party parser on untrusted input: any failure means "no page text"
        doc = bare_extraction(
            tree,
            url=url,
            fast=True,
            favor_precision=True,
            include_comments=False,
            include_tables=False,
            include_images=False,
            include_links=False,
            include_formatting=False,
            deduplicate=False,
            with_metadata=False,
            prune_xpath=_PRUNE,
        )
    except Exception:
        doc = None
    if doc is None or isinstance(doc, dict):
        return page
    _metadata(tree, page, entry)
    # as trafilatura's own metadata does: a page that names no canonical address is its URL's
    page.canonical = page.canonical or canonical_url(url)
    lines = boilerplate.paragraphs(doc.text or "")
    if captions:
        lines = [line for line in lines if normalise_text(line) not in captions]
    page.lines = _seeded(lines)
    return page


def _metadata(tree: HtmlElement, page: _Page, entry: FeedEntry | None) -> None:
    """Title, author and date from the page's meta tags, JSON-LD and trafilatura's heuristics.

    The costly searches run only for what neither the meta tags nor the feed entry give: the
    entry's author and date are used anyway when the page has none.
    """
    try:  # trafilatura's parts on untrusted input: a failure leaves the field to the feed
        meta = extract_meta_json(tree, examine_meta(tree))
        page.title = cut(_squash(meta.title or extract_title(tree) or ""), MAX_TITLE) or None
        # trafilatura splits "RFE/RL" into "RFE; RL": the page's own author meta wins
        author = _meta_author(tree) or (meta.author if " " in (meta.author or "") else None)
        if not author and not (entry and entry.author):
            author = extract_author(tree)
        page.author = cut(_squash(author or ""), MAX_AUTHOR) or None
        if not page.published and not (entry and entry.published):
            page.published = _day(find_date(tree, extensive_search=False, original_date=True))
    except Exception:
        return


def _seeded(lines: Iterable[str]) -> list[str]:
    return boilerplate.clean(list(lines), frozenset())


def _drop_title(lines: list[str], title: str) -> list[str]:
    """Lines without the headline (repeated above the body, or in a list of headlines)."""
    head = normalise_text(title)
    return [line for line in lines if normalise_text(line) != head] if head else lines


def _squash(text: str) -> str:
    return " ".join(text.split())


def _captions(tree: HtmlElement) -> frozenset[str]:
    """Normalised image alts and figure captions: lines equal to one are not story text."""
    found = {str(alt) for alt in tree.xpath("//img/@alt")}
    found.update(el.text_content() for el in tree.xpath("//figcaption"))
    # Some CMSs fill an image's alt with the article's description (its lede): keep that line.
    described = {
        normalise_text(str(d))
        for d in tree.xpath("//meta[@name='description' or @property='og:description']/@content")
    }
    normalised = {normalise_text(c) for c in found}
    return frozenset(c for c in normalised if c and c not in described)


def _first(tree: HtmlElement, xpath: str) -> str | None:
    for value in tree.xpath(xpath):
        if str(value).strip():
            return str(value).strip()
    return None


def _meta_author(tree: HtmlElement) -> str | None:
    author = _first(tree, "//meta[@name='author']/@content")
    if not author or "://" in author or "@" in author:
        return None
    return _squash(author)


def _canonical(tree: HtmlElement, url: str) -> str | None:
    href = _first(
        tree, "//link[contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]/@href"
    ) or _first(tree, "//meta[@property='og:url']/@content")
    return canonical_url(href, url) if href else None


def _language(tree: HtmlElement) -> str | None:
    lang = _first(tree, "/html/@lang") or _first(tree, "//meta[@property='og:locale']/@content")
    if not lang:
        return None
    primary = re.split(r"[-_]", lang, maxsplit=1)[0].lower()
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None


def _meta_date(tree: HtmlElement) -> datetime | None:
    return _day(_first(tree, "//meta[@property='article:published_time']/@content"))


def _day(value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time as aware UTC (a bare date is midnight UTC)."""
    if not value:
        return None
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        return None


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _html_lines(content: str) -> list[str]:
    """Paragraphs of a feed entry's HTML (or plain text) content, captions dropped."""
    if not content or not content.strip():
        return []
    if "<" not in content:
        return boilerplate.paragraphs(content)
    try:
        root = lxml.html.fragment_fromstring(content, create_parent="div")
    except (ValueError, etree.ParserError):
        return boilerplate.paragraphs(content)
    for el in root.xpath("//script|//style|//figcaption|//noscript"):
        el.drop_tree()
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.lower() in _BLOCKS:
            el.tail = "\n" + (el.tail or "")
            if el.tag.lower() != "br":
                el.text = "\n" + (el.text or "")
    return boilerplate.paragraphs(root.text_content())
