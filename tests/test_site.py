"""The demo outlets: derived faithfully from the corpus, served with valid feeds and conditional
GET, and extracted back to the clean stories end to end over loopback HTTP."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from monitor.boilerplate import page_keys
from monitor.config import load_config
from monitor.demo.server import LoopbackServer
from monitor.demo.site import (
    BOILERPLATE,
    STORIES,
    UTM,
    build_routes,
    demo_outlets,
    demo_pages,
    feeds_yaml,
)
from monitor.extract import content_hash, extract, normalise_text
from monitor.parse import parse

CORPUS = Path(__file__).resolve().parent.parent / "monitor" / "demo" / "corpus"
PAGES = demo_pages()
FEEDS = [(o.slug, name, path) for o in demo_outlets() for name, path in o.feed_paths]
WORKING_FEEDS = [f for f in FEEDS if f[0] != "broken"]


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as s:
        s.routes.update(build_routes(s.base))
        yield s


def test_each_story_is_the_corpus_text_minus_headline_captions_and_chrome() -> None:
    for cid, story in STORIES.items():
        (path,) = CORPUS.glob(f"{cid}_*.txt")
        corpus = [" ".join(line.split()) for line in path.read_text().splitlines()]
        for paragraph in story.splitlines():
            assert " ".join(paragraph.split()) in corpus
        assert 15 <= len(story.splitlines()) <= 30
        seen = normalise_text(story)
        assert [b for b in BOILERPLATE if normalise_text(b) in seen] == []


def test_the_boilerplate_list_holds_every_string_the_corpus_readme_names() -> None:
    wanted = ["Accessibility links", "Breaking News", "please wait", "Share this:", "Like this:"]
    wanted += ["No media source currently available", "0:00 0:03:04 0:00", "Leave a Reply"]
    wanted += ["undesirable organization", "To find out more, click here.", "Ilhan Omar"]
    joined = normalise_text(" | ".join(BOILERPLATE))
    assert [w for w in wanted if normalise_text(w) not in joined] == []


def test_briefs_reuse_paragraphs_of_the_corpus_article_they_name() -> None:
    briefs = [p for p in PAGES if p.corpus_id is None]
    assert briefs
    for brief in briefs:
        assert brief.derived_from is not None
        assert set(brief.paragraphs) <= set(STORIES[brief.derived_from].splitlines())


def test_every_outlet_with_pages_has_at_least_three_and_the_mirror_meets_003_last() -> None:
    per_outlet = Counter(p.outlet for p in PAGES)
    assert all(n >= 3 for n in per_outlet.values())
    mirror = sorted((p for p in PAGES if p.outlet == "mirror"), key=lambda p: p.published)
    assert mirror[0].corpus_id == "003"  # newest-first processing learns the chrome before it


def test_no_story_paragraph_recurs_on_three_pages_of_one_outlet() -> None:
    per_outlet: dict[str, Counter[str]] = defaultdict(Counter)
    for page in PAGES:
        per_outlet[page.outlet].update(set(page.paragraphs))
    assert [(o, p) for o, c in per_outlet.items() for p, n in c.items() if n >= 3] == []


def test_feeds_yaml_loads_as_the_monitor_config(tmp_path: Path) -> None:
    (tmp_path / "feeds.yaml").write_text(feeds_yaml("http://127.0.0.1:8123"))
    config = load_config(tmp_path)
    assert {f.name for f in config.feeds} == {
        "rferl/all",
        "rferl/ukraine",
        "wireblog",
        "presstv",
        "mirror",
        "broken/main",
        "broken/legacy",
    }
    rferl = next(f for f in config.feeds if f.name == "rferl/all")
    assert (rferl.url, rferl.outlet_name, rferl.language) == (
        "http://127.0.0.1:8123/rferl/rss.xml",
        "RFE/RL",
        "en",
    )


@pytest.mark.parametrize(("outlet", "name", "path"), WORKING_FEEDS)
def test_each_feed_is_valid_and_answers_304_to_its_etag(
    server: LoopbackServer, outlet: str, name: str | None, path: str
) -> None:
    first = httpx.get(server.url(path))
    assert first.status_code == 200
    assert first.headers["content-type"].split(";")[0].endswith("xml")
    parsed = feedparser.parse(first.content)
    assert not parsed.bozo
    assert parsed.entries
    again = httpx.get(server.url(path), headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_the_broken_outlet_answers_500_and_an_html_page(server: LoopbackServer) -> None:
    assert httpx.get(server.url("/broken/rss.xml")).status_code == 500
    legacy = httpx.get(server.url("/broken/feed/"))
    assert legacy.status_code == 200
    assert parse(legacy.content, server.url("/broken/feed/"), "text/html").is_feed is False


def test_two_rferl_feeds_carry_001_and_003_one_with_tracking_parameters(
    server: LoopbackServer,
) -> None:
    def links(path: str) -> set[str]:
        return {e.link for e in feedparser.parse(httpx.get(server.url(path)).content).entries}

    everything, ukraine = links("/rferl/rss.xml"), links("/rferl/ukraine.atom")
    assert len(everything) == 3 and len(ukraine) == 2
    assert all(link.endswith(UTM) for link in ukraine)
    assert {link.removesuffix(UTM) for link in ukraine} < everything


def test_the_blog_feed_is_rdf_with_full_content(server: LoopbackServer) -> None:
    body = httpx.get(server.url("/wireblog/feed/rdf/")).content
    assert feedparser.parse(body).version == "rss10"
    entries = parse(body, server.url("/wireblog/feed/rdf/")).entries
    ap = next(e for e in entries if "relentless" in e.title)
    assert content_hash(extract(None, ap.link or "", ap).text) == content_hash(STORIES["002"])


def test_every_feed_entry_extracts_to_its_clean_story_over_http(server: LoopbackServer) -> None:
    fetched = []
    for _, _, path in WORKING_FEEDS:
        parsed = parse(httpx.get(server.url(path)).content, server.url(path))
        for entry in parsed.entries:
            html = httpx.get(entry.link or "").content
            fetched.append((entry, html, extract(html, entry.link or "", entry)))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    page_by_url = {p.url(server.base): p for p in PAGES}
    for _, _, ex in fetched:
        counts[page_by_url[ex.canonical_url or ""].outlet].update(page_keys(ex.lines))
    learned = {o: frozenset(k for k, n in c.items() if n >= 3) for o, c in counts.items()}
    for entry, html, ex in fetched:
        page = page_by_url[ex.canonical_url or ""]
        again = extract(html, entry.link or "", entry, learned[page.outlet])
        assert (again.title, again.source) == (page.title, "page")
        assert content_hash(again.text) == content_hash(page.text), page.path
    assert len(fetched) == len(PAGES) + 2  # 001 and 003 are in two RFE/RL feeds
