"""The extract stage on the demo outlets' pages: clean story text, right metadata, feed fallback;
and the boilerplate functions it relies on."""

from __future__ import annotations

import multiprocessing
import pickle
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

import pytest

from monitor import boilerplate
from monitor.boilerplate import SEED_PATTERNS, clean, line_key, page_keys, paragraphs
from monitor.demo.site import (
    BOILERPLATE,
    STORIES,
    UTM,
    DemoPage,
    build_routes,
    demo_pages,
)
from monitor.domain import Extracted, FeedEntry
from monitor.extract import content_hash, extract, normalise_text

BASE = "http://127.0.0.1:8765"
MIN_PAGES = 3  # the default boilerplate_min_pages
ROUTES = build_routes(BASE)
PAGES = demo_pages()
WRONG_CAPTION = "US Rep. Ilhan Omar (D-MN) (L) talks with Speaker of the House Nancy Pelosi"


def page_id(page: DemoPage) -> str:
    return f"{page.outlet}/{page.path.rstrip('/').rsplit('/', 1)[-1][:40]}"


def body(page: DemoPage) -> bytes:
    return ROUTES[page.path].body


def entry_for(page: DemoPage, content: str | None = None, **changes: object) -> FeedEntry:
    """The feed entry that announced the page; content is the full story unless given."""
    html = "".join(f"<p>{p}</p>" for p in page.paragraphs) if content is None else content
    fields: dict[str, object] = {
        "guid": page.url(BASE),
        "link": page.url(BASE),
        "title": page.title,
        "author": None,
        "published": None,
        "content": html,
        "entry_hash": "h",
    }
    fields.update(changes)
    return FeedEntry(**fields)  # type: ignore[arg-type]


def the_page(outlet: str, corpus_id: str) -> DemoPage:
    return next(p for p in PAGES if p.outlet == outlet and p.corpus_id == corpus_id)


def learn(pages: tuple[DemoPage, ...] = PAGES) -> dict[str, frozenset[str]]:
    """What the store's learner ends up with: per outlet, keys seen on >= MIN_PAGES pages."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for page in pages:
        counts[page.outlet].update(page_keys(extract(body(page), page.url(BASE), None).lines))
    return {o: frozenset(k for k, n in c.items() if n >= MIN_PAGES) for o, c in counts.items()}


LEARNED = learn()


def extracted(page: DemoPage) -> Extracted:
    return extract(body(page), page.url(BASE), None, LEARNED[page.outlet])


def leaked(text: str) -> list[str]:
    seen = normalise_text(text)
    return [b for b in BOILERPLATE if normalise_text(b) in seen]


# -- every demo page -------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_boilerplate_string_reaches_the_text_of_a_demo_page(page: DemoPage) -> None:
    assert leaked(extracted(page).text) == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_first_and_last_story_paragraphs_are_kept(page: DemoPage) -> None:
    text = normalise_text(extracted(page).text)
    assert normalise_text(page.paragraphs[0]) in text
    assert normalise_text(page.paragraphs[-1]) in text


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_text_is_exactly_the_story_paragraph_by_paragraph(page: DemoPage) -> None:
    got = [normalise_text(line) for line in paragraphs(extracted(page).text)]
    assert got == [normalise_text(p) for p in page.paragraphs]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_title_is_the_headline_and_is_not_repeated_in_the_text(page: DemoPage) -> None:
    ex = extracted(page)
    assert ex.title == page.title
    assert normalise_text(page.title) not in [normalise_text(line) for line in ex.text.splitlines()]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_canonical_url_is_the_rel_canonical_without_tracking_parameters(
    page: DemoPage,
) -> None:
    fetched_as = page.url(BASE) + UTM  # the link as the Atom feed gives it
    ex = extract(ROUTES[page.path + UTM].body, fetched_as, entry_for(page, link=fetched_as))
    assert ex.canonical_url == page.url(BASE)
    assert "utm_" not in ex.canonical_url


def _with_head_links(page: DemoPage, canonical: str | None, og_url: str | None) -> str:
    html = body(page).decode()
    url = page.url(BASE)
    html = html.replace(f'<link rel="canonical" href="{url}">', "")
    html = html.replace(f'<meta property="og:url" content="{url}">', "")
    links = (f'<link rel="canonical" href="{canonical}">' if canonical else "") + (
        f'<meta property="og:url" content="{og_url}">' if og_url else ""
    )
    return html.replace("</head>", links + "</head>")


CANONICALS = {
    "relative-with-trackers": ("/moved/story.html?utm_campaign=x&id=7#comments", None),
    "og-url-only": (None, "https://Example.ORG:443/story?fbclid=abc"),
    "neither": (None, None),
}
EXPECTED = {
    "relative-with-trackers": f"{BASE}/moved/story.html?id=7",
    "og-url-only": "https://example.org/story",
    "neither": f"{BASE}/fetched/here.html",
}


@pytest.mark.parametrize("case", CANONICALS, ids=CANONICALS.keys())
def test_the_canonical_url_is_made_absolute_and_loses_trackers_and_fragment(case: str) -> None:
    page = the_page("rferl", "000")
    html = _with_head_links(page, *CANONICALS[case])
    ex = extract(html, f"{BASE}/fetched/here.html?utm_source=rss", None)
    assert ex.canonical_url == EXPECTED[case]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_page_date_and_language_are_read_when_the_feed_has_no_date(page: DemoPage) -> None:
    ex = extracted(page)
    assert ex.published == page.published
    assert ex.published is not None and ex.published.utcoffset() is not None
    assert ex.language == "en"
    assert ex.source == "page"


# -- corpus-specific damage ------------------------------------------------------------------


def test_the_mirror_copy_of_003_has_the_same_content_hash_as_the_rferl_original() -> None:
    original, mirror = extracted(the_page("rferl", "003")), extracted(the_page("mirror", "003"))
    assert original.canonical_url != mirror.canonical_url
    assert content_hash(mirror.text) == content_hash(original.text)
    assert content_hash(original.text) == content_hash(STORIES["003"])


def test_the_wrong_press_tv_caption_does_not_appear() -> None:
    page = the_page("presstv", "004")
    assert WRONG_CAPTION in body(page).decode()  # the page does carry it, twice
    ex = extracted(page)
    assert "ilhan omar" not in ex.text.casefold()
    assert all("ilhan omar" not in line.casefold() for line in ex.lines)


def test_the_photo_caption_captured_twice_is_dropped_both_times() -> None:
    page = the_page("rferl", "000")
    assert body(page).decode().count("Ukrainian flags in front of the Russian Embassy") >= 2
    assert "ukrainian flags in front" not in extracted(page).text.casefold()


def test_video_player_residue_is_gone_from_the_lines_already() -> None:
    lines = extract(body(the_page("rferl", "001")), BASE, None).lines
    assert not {"please wait", "0:00 0:03:04 0:00"} & {line.casefold() for line in lines}
    assert not any("Belarus Emerges As Key Player" in line for line in lines)


@pytest.mark.parametrize("outlet", ["rferl", "presstv", "mirror"])
def test_pages_carry_chrome_that_only_the_per_outlet_learner_removes(outlet: str) -> None:
    pages = [p for p in PAGES if p.outlet == outlet]
    for page in pages:
        ex = extract(body(page), page.url(BASE), None)  # nothing learned yet
        assert leaked(ex.text), page.path
        assert content_hash(ex.text) != content_hash(page.text)
    assert len(LEARNED[outlet]) >= 2


def test_lines_keep_learned_boilerplate_so_the_caller_can_keep_counting_it() -> None:
    page = the_page("rferl", "000")
    ex = extracted(page)
    undesirable = (
        'RFE/RL has been declared an "undesirable organization" by the Russian government.'
    )
    assert undesirable in ex.lines
    assert undesirable not in ex.text


def test_learning_needs_the_outlet_pages_of_min_pages_distinct_pages() -> None:
    two_rferl_pages = tuple(p for p in PAGES if p.outlet == "rferl")[:2]
    assert learn(two_rferl_pages)["rferl"] == frozenset()


# -- fallback to the feed --------------------------------------------------------------------

BROKEN = {
    "none": None,
    "empty": b"",
    "unclosed-body": b"<html><body>",
    "garbage-bytes": bytes(range(256)) * 8,
    "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 512,
}


@pytest.mark.parametrize("html", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_page_falls_back_to_the_feed_content(html: bytes | None) -> None:
    page = the_page("wireblog", "002")
    ex = extract(html, page.url(BASE), entry_for(page, author="Associated Press"))
    assert ex.source == "feed"
    assert content_hash(ex.text) == content_hash(STORIES["002"])
    assert ex.title == page.title
    assert ex.author == "Associated Press"


def test_a_page_shorter_than_min_chars_falls_back_to_the_feed_content() -> None:
    page = the_page("presstv", "004")
    stub = (
        "<html><head><title>Just a moment...</title></head><body><article>"
        "<p>Checking your browser before accessing the site.</p></article></body></html>"
    )
    ex = extract(stub, page.url(BASE), entry_for(page))
    assert ex.source == "feed"
    assert ex.title == page.title
    assert content_hash(ex.text) == content_hash(STORIES["004"])


def test_a_full_page_is_preferred_to_the_feed_content() -> None:
    page = the_page("wireblog", "002")
    ex = extract(body(page), page.url(BASE), entry_for(page, content="<p>A short summary.</p>"))
    assert ex.source == "page"


def test_a_short_page_is_kept_when_the_feed_has_even_less() -> None:
    page = the_page("presstv", "004")
    stub = "<html><body><article><p>Only one short paragraph here.</p></article></body></html>"
    ex = extract(stub, page.url(BASE), entry_for(page, content=""))
    assert ex.source == "page"
    assert ex.text == "Only one short paragraph here."


def test_feed_content_loses_its_repeated_headline_captions_and_seed_boilerplate() -> None:
    page = the_page("wireblog", "002")
    content = (
        f"<h1>{page.title}</h1><figure><img alt='x'><figcaption>A caption</figcaption></figure>"
        + "".join(f"<p>{p}</p>" for p in page.paragraphs)
        + "<p>Share this:</p><ul><li>Twitter</li><li>Facebook</li></ul>"
    )
    ex = extract(None, page.url(BASE), entry_for(page, content=content))
    assert [normalise_text(x) for x in paragraphs(ex.text)] == [
        normalise_text(p) for p in page.paragraphs
    ]


def test_the_feed_date_wins_over_the_page_date_and_becomes_utc() -> None:
    page = the_page("rferl", "001")
    kyiv_noon = datetime.fromisoformat("2022-01-19T12:00:00+02:00")
    ex = extract(body(page), page.url(BASE), entry_for(page, published=kyiv_noon))
    assert ex.published == datetime(2022, 1, 19, 10, 0, tzinfo=UTC)
    assert ex.published.tzinfo is UTC


BYLINE_PAGE = (
    "<html><head><title>Troops gather | Example News</title></head><body><article>"
    "<h1>Troops gather near the border</h1>"
    "<p class='byline'>By <span class='author'>Jane Reporter</span></p>"
    "<p class='date'>Published 2022-01-18</p>"
    + "".join(f"<p>{p}</p>" for p in STORIES["001"].split("\n")[:4])
    + "</article></body></html>"
)


def test_a_byline_and_a_page_date_are_found_when_neither_meta_tags_nor_the_feed_give_them() -> None:
    ex = extract(BYLINE_PAGE, f"{BASE}/byline.html", None)
    assert ex.source == "page"
    assert ex.title == "Troops gather near the border"
    assert ex.author == "Jane Reporter"
    assert ex.published == datetime(2022, 1, 18, tzinfo=UTC)


def test_the_feed_author_and_date_stand_in_for_a_page_that_has_no_meta_tags() -> None:
    page = the_page("wireblog", "002")
    entry = entry_for(
        page, author="Associated Press", published=datetime(2022, 1, 20, 9, 0, tzinfo=UTC)
    )
    ex = extract(BYLINE_PAGE, f"{BASE}/byline.html", entry)
    assert ex.author == "Associated Press"
    assert ex.published == datetime(2022, 1, 20, 9, 0, tzinfo=UTC)


def test_no_page_and_no_entry_gives_an_empty_result_rather_than_an_error() -> None:
    ex = extract(None, BASE, None)
    assert (ex.text, ex.title, ex.source, ex.canonical_url) == ("", "", "page", None)


def test_str_and_bytes_pages_extract_alike() -> None:
    page = the_page("mirror", "003")
    assert extract(body(page).decode(), page.url(BASE), None) == extract(
        body(page), page.url(BASE), None
    )


def test_extract_runs_in_a_process_pool() -> None:
    page = the_page("rferl", "003")
    args = (body(page), page.url(BASE), None, LEARNED["rferl"])
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        remote = pool.submit(extract, *args).result(timeout=60)
    assert remote == extract(*args)
    assert pickle.loads(pickle.dumps(remote)) == remote


# -- normalisation and hashing ---------------------------------------------------------------


def test_content_hash_ignores_case_spacing_quote_style_and_unicode_forms() -> None:
    a = "Blinken said: \u201cIt\u2019s likely\u201d\u00a0the presidents\n\nwill speak."
    b = 'blinken said: "it\'s likely" the presidents will speak.'
    assert normalise_text(a) == b
    assert content_hash(a) == content_hash(b)
    assert content_hash("ﬁnal\u200b word") == content_hash("final word")


def test_content_hash_tells_different_texts_apart() -> None:
    assert content_hash("Russia massed troops.") != content_hash("Russia withdrew troops.")
    assert len(content_hash("x")) == 64


# -- boilerplate functions -------------------------------------------------------------------


def test_paragraphs_are_non_empty_whitespace_normalised_lines() -> None:
    assert paragraphs("  One\u00a0 two \n\n\t\nthree  ") == ["One two", "three"]


def test_time_codes_of_different_clips_share_one_line_key() -> None:
    assert line_key("0:00 0:03:04 0:00") == line_key("0:00 0:01:09 0:00")
    assert line_key("  Share THIS: ") == line_key("- share this:")
    assert line_key("Copyright 2021") == line_key("copyright 2022")
    assert line_key("Share this:") != line_key("Like this:")
    assert len(line_key("x")) <= 16


def test_sentences_that_differ_by_a_number_keep_distinct_keys() -> None:
    # a background sentence repeated with updated figures is news, not chrome
    base = "Russia has massed an estimated {} troops near the border with Ukraine, officials say."
    assert line_key(base.format("100,000")) != line_key(base.format("127,000"))


def test_page_keys_count_a_line_once_and_skip_very_long_lines() -> None:
    long_line = "word " * 200
    keys = page_keys(["Footer", "footer", long_line, ""])
    assert keys == frozenset({line_key("Footer")})


def test_clean_drops_seed_patterns_and_learned_keys_only() -> None:
    lines = ["Share this:", "A real sentence of the story.", "Our legal footer.", "please wait"]
    assert clean(lines, frozenset()) == ["A real sentence of the story.", "Our legal footer."]
    assert clean(lines, frozenset({line_key("our legal footer.")})) == [
        "A real sentence of the story."
    ]


@pytest.mark.parametrize(
    "line",
    [
        "Accessibility links",
        "Breaking News",
        "Skip to content",
        "Share this:",
        "Like this:",
        "%d bloggers like this:",
        "12 bloggers like this:",
        "Leave a Reply",
        "Your email address will not be published. Required fields are marked *",
        "Required fields are marked *",
        "please wait",
        "Loading...",
        "No media source currently available",
        "0:00 0:00:50 0:00",
        "Youtube video thumbnail",
        "• Twitter",
        "Tuesday, 14 December 2021 04:19 PM",
        "Published December 2, 2021",
    ],
)
def test_seed_patterns_catch_generic_web_boilerplate(line: str) -> None:
    assert boilerplate.is_seed_boilerplate(line)


def test_seed_patterns_spare_every_corpus_story_line() -> None:
    story_lines = [line for story in STORIES.values() for line in story.splitlines()]
    assert len(story_lines) > 100
    assert [line for line in story_lines if boilerplate.is_seed_boilerplate(line)] == []
    assert len(SEED_PATTERNS) < 20  # generic, not tuned to one article
