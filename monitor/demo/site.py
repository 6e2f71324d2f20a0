"""The bundled sample outlets: feeds and article pages built from the five corpus texts.

Each corpus text is the captured text of a real page, boilerplate included. It is split here into
headline, photo captions, video-player residue, chrome and the clean story; the pages then put the
chrome back where a real site has it, some of it inside the article container so that extraction
alone does not remove it and only the per-outlet boilerplate learner does. Outlets with a single
corpus article get short briefs built verbatim from paragraphs of another corpus article (named in
``DemoPage.derived_from``) so the learner has at least three pages per outlet.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache
from html import escape
from pathlib import Path

from monitor.demo.server import Route

CORPUS_DIR = Path(__file__).parent / "corpus"
UTM = "?utm_source=rss&utm_medium=feed"

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
RDF_TYPE = "application/rdf+xml; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True)
class DemoOutlet:
    """One sample outlet as feeds.yaml names it."""

    slug: str
    name: str
    language: str
    tags: tuple[str, ...]
    feed_paths: tuple[tuple[str | None, str], ...]  # (feed name or None, path)


@dataclass(frozen=True)
class DemoPage:
    """One article page of a sample outlet and the clean story it carries."""

    outlet: str
    path: str  # without query; the canonical URL is base_url + path
    title: str
    paragraphs: tuple[str, ...]  # the clean story, one paragraph per item
    published: datetime
    corpus_id: str | None  # "000".."004" when the page carries a corpus article
    derived_from: str | None = None  # for briefs: the corpus article whose paragraphs it reuses
    captions: tuple[str, ...] = ()  # photo captions (as captured, a wrong one included)
    author: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)

    @property
    def summary(self) -> str:
        return self.paragraphs[0]

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/") + self.path


# -- the corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    file: str
    headline: str  # as in shared/corpus/README.md (quotes there may be straight)
    captions: int  # caption lines right after the headline


_CORPUS: dict[str, _Meta] = {
    "000": _Meta(
        "000_a91501bf9f40de3d.txt",
        "U.S., Ukraine Deny Putin's Assertion That They Are Aggressor In Border Escalation",
        2,
    ),
    "001": _Meta(
        "001_bb5a4164c865328c.txt",
        "Blinken: Diplomacy Continues In Bid To Deter Russian Aggression Against Ukraine",
        2,
    ),
    "002": _Meta(
        "002_6e2331712607e042.txt",
        "Blinken calls for unity to fight 'relentless' Russian aggression",
        0,
    ),
    "003": _Meta(
        "003_962f72f7a6d5883a.txt",
        "Blinken Warns Russia Of 'Significant Costs' In Case Of Aggression Against Ukraine",
        2,
    ),
    "004": _Meta(
        "004_42f62abf4ca1e602.txt",
        "US, NATO are 'united with Ukraine' against Russia: US diplomat",
        2,
    ),
}

# First lines of the chrome that closes a captured page: everything from there on is chrome.
_TAIL_MARKERS = ("• 16x9 Image", "Leave a Reply", "Press TV’s website can also be accessed")
_PLAYER_WAIT = "please wait"
_EMBED_LINES = ("Youtube video thumbnail",)  # an embedded clip's residue inside a story


@dataclass(frozen=True)
class _Video:
    before: int  # index of the story paragraph the player sits before
    title: str
    wait: str
    error: str
    timecode: str


@dataclass(frozen=True)
class _Captured:
    title: str
    header: tuple[str, ...]  # chrome before the headline
    captions: tuple[str, ...]
    story: tuple[str, ...]
    videos: tuple[_Video, ...]
    embeds: tuple[tuple[int, str], ...]  # (story paragraph it sits before, residue line)
    tail: tuple[str, ...]  # chrome after the story


def _squash(text: str) -> str:
    return " ".join(text.split())


def _plain_quotes(text: str) -> str:
    return text.translate(str.maketrans("‘’“”", "''\"\""))


@cache
def _captured(cid: str) -> _Captured:
    """Split one corpus text into its parts; raise if it no longer has the expected shape."""
    meta = _CORPUS[cid]
    raw = (CORPUS_DIR / meta.file).read_text(encoding="utf-8")
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    want = _plain_quotes(meta.headline)
    at = next(i for i, line in enumerate(lines) if _plain_quotes(_squash(line)) == want)
    header, rest = tuple(lines[:at]), lines[at + 1 :]
    captions, rest = tuple(rest[: meta.captions]), rest[meta.captions :]
    end = next(
        (i for i, line in enumerate(rest) if _squash(line).startswith(_TAIL_MARKERS)), len(rest)
    )
    body, tail = rest[:end], tuple(rest[end:])
    story: list[str] = []
    videos: list[_Video] = []
    embeds: list[tuple[int, str]] = []
    i = 0
    while i < len(body):
        if i + 3 < len(body) and body[i + 1] == _PLAYER_WAIT:
            videos.append(_Video(len(story), *body[i : i + 4]))
            i += 4
        elif body[i] in _EMBED_LINES:
            embeds.append((len(story), body[i]))
            i += 1
        else:
            story.append(body[i])
            i += 1
    if meta.captions and cid != "004" and len(set(captions)) != 1:
        raise ValueError(f"corpus {cid}: expected one caption captured twice, got {captions!r}")
    return _Captured(lines[at], header, captions, tuple(story), tuple(videos), tuple(embeds), tail)


STORIES: dict[str, str] = {cid: "\n".join(_captured(cid).story) for cid in _CORPUS}
"""Corpus id -> the clean story derived from it (headline, captions and chrome removed)."""

_RFERL_FOOTER = _captured("000").tail[1:]  # the legal footer, verbatim from the capture
_PRESSTV_TAIL = _captured("004").tail
_BREADCRUMB = _captured("004").header[0]


def _story(cid: str) -> tuple[str, ...]:
    return _captured(cid).story


def _pick(cid: str, *starts: str) -> tuple[str, ...]:
    """Paragraphs of a corpus story chosen by how they begin (each must match exactly once)."""
    chosen = []
    for start in starts:
        hits = [p for p in _story(cid) if _plain_quotes(p).startswith(start)]
        if len(hits) != 1:
            raise ValueError(f"corpus {cid}: {start!r} matches {len(hits)} paragraphs")
        chosen.append(hits[0])
    return tuple(chosen)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- outlets and pages -----------------------------------------------------------------------

_OUTLETS = (
    DemoOutlet(
        "rferl",
        "RFE/RL",
        "en",
        ("broadcaster", "ukraine"),
        (("all", "/rferl/rss.xml"), ("ukraine", "/rferl/ukraine.atom")),
    ),
    DemoOutlet(
        "wireblog", "The Wire Room", "en", ("blog", "wire-copy"), ((None, "/wireblog/feed/rdf/"),)
    ),
    DemoOutlet("presstv", "Press TV", "en", ("state-media",), ((None, "/presstv/rss.xml"),)),
    DemoOutlet("mirror", "Borderland Times", "en", ("syndication",), ((None, "/mirror/feed.xml"),)),
    DemoOutlet(
        "broken",
        "Broken Example",
        "en",
        ("test",),
        (("main", "/broken/rss.xml"), ("legacy", "/broken/feed/")),
    ),
)


def _corpus_page(cid: str, outlet: str, path: str, published: str, author: str) -> DemoPage:
    cap = _captured(cid)
    return DemoPage(
        outlet, path, cap.title, cap.story, _utc(published), cid, None, cap.captions, author
    )


_DESK = {"wireblog": "wiredesk", "presstv": "Press TV", "mirror": "RFE/RL"}


def _brief(
    outlet: str, path: str, title: str, published: str, source: str, *starts: str
) -> DemoPage:
    paragraphs = _pick(source, *starts)
    return DemoPage(
        outlet, path, title, paragraphs, _utc(published), None, source, (), _DESK[outlet]
    )


@cache
def _pages() -> tuple[DemoPage, ...]:
    return (
        # RFE/RL: the three corpus articles
        _corpus_page(
            "003",
            "rferl",
            "/rferl/a/blinken-lavrov-stockholm-osce-ukraine/31590312.html",
            "2021-12-02T16:31:00+00:00",
            "RFE/RL",
        ),
        _corpus_page(
            "000",
            "rferl",
            "/rferl/a/ukraine-us-deny-putin-aggressor-claim/31623511.html",
            "2021-12-23T18:57:00+00:00",
            "RFE/RL",
        ),
        _corpus_page(
            "001",
            "rferl",
            "/rferl/a/blinken-kyiv-diplomacy-russia-ukraine/31661054.html",
            "2022-01-19T11:45:00+00:00",
            "RFE/RL",
        ),
        # The Wire Room: the AP re-post and two briefs
        _brief(
            "wireblog",
            "/wireblog/2021/12/02/lavrov-tells-blinken-moscow-needs-security-guarantees/",
            "Lavrov tells Blinken Moscow needs 'long-term security guarantees'",
            "2021-12-02T19:05:00+00:00",
            "003",
            "Lavrov told Blinken that Moscow needed",
            "\"We're going to make sure we are heard",
            '"So if NATO still refuses',
        ),
        _brief(
            "wireblog",
            "/wireblog/2021/12/23/psaki-only-aggression-at-the-border-is-russias-buildup/",
            "Psaki: the only aggression at the border is Russia's buildup",
            "2021-12-23T20:10:00+00:00",
            "000",
            "The United States and Ukraine deny",
            "White House Press Secretary Jen Psaki said",
            "Psaki also noted that NATO is a defensive alliance",
        ),
        _corpus_page(
            "002",
            "wireblog",
            "/wireblog/2022/01/19/blinken-calls-for-unity-to-fight-relentless-russian-aggression/",
            "2022-01-19T15:20:00+00:00",
            "Associated Press",
        ),
        # Press TV: the corpus article and two briefs
        _corpus_page(
            "004",
            "presstv",
            "/presstv/Detail/2021/12/14/673436/US-NATO-united-with-Ukraine-against-Russia",
            "2021-12-14T16:19:00+00:00",
            "Press TV",
        ),
        _brief(
            "presstv",
            "/presstv/Detail/2021/12/23/674012/Putin-Kiev-preparing-operation-Donbas",
            "Putin says Kiev may be preparing another operation in Donbas",
            "2021-12-23T19:30:00+00:00",
            "000",
            "Putin claimed that concern in the West",
            '"It seems they are preparing another operation',
            "Ukrainian officials have denied any intention",
        ),
        _brief(
            "presstv",
            "/presstv/Detail/2022/01/19/676120/Ryabkov-West-stop-arming-Ukraine",
            "Russia's Ryabkov urges West to stop supplying Ukraine with weapons",
            "2022-01-19T17:05:00+00:00",
            "001",
            "In response to the beefed-up aid",
            "Russia maintained a tough posture on January 19",
            '"For us, the matter of priority',
        ),
        # Borderland Times: republishes RFE/RL (003 verbatim) and three briefs, so that a learner
        # processing the feed newest first knows the partner's chrome before it meets 003
        _corpus_page(
            "003",
            "mirror",
            "/mirror/world/2021/12/03/blinken-warns-russia-of-significant-costs.html",
            "2021-12-03T08:10:00+00:00",
            "RFE/RL",
        ),
        _brief(
            "mirror",
            "/mirror/world/2021/12/24/truss-russian-incursion-massive-strategic-mistake.html",
            "Truss: a Russian incursion would be a 'massive strategic mistake'",
            "2021-12-24T07:40:00+00:00",
            "000",
            "U.S. Secretary of State Antony Blinken on December 23 discussed",
            '"Ukraine continues to show commendable restraint',
            "Truss said any Russian incursion",
        ),
        _brief(
            "mirror",
            "/mirror/world/2022/01/19/blinken-heads-to-berlin-before-lavrov-meeting.html",
            "Blinken heads to Berlin for four-way talks before meeting Lavrov",
            "2022-01-19T20:30:00+00:00",
            "001",
            "Blinken is set to travel to Berlin",
            'The meetings will focus on "joint efforts',
            "Russia's deployment of forces along Ukraine's border",
        ),
        _brief(
            "mirror",
            "/mirror/world/2022/01/20/czech-senate-speaker-warns-against-concessions.html",
            "Czech Senate speaker warns NATO against concessions to Russia",
            "2022-01-20T06:55:00+00:00",
            "001",
            "In an interview with RFE/RL on January 19, Czech Senate Speaker",
            '"Totalitarian powers would start to gain more influence',
            "Lithuania's Defense Minister Arvydas Anusauskas",
        ),
    )


def demo_outlets() -> tuple[DemoOutlet, ...]:
    """The sample outlets, the failing one included."""
    return _OUTLETS


def demo_pages() -> tuple[DemoPage, ...]:
    """Every article page of the sample outlets, oldest first within an outlet."""
    return _pages()


# -- chrome placed on the pages --------------------------------------------------------------

_RFERL_SKIP = ("Skip to main content", "Skip to main Navigation", "Skip to Search")
_RFERL_COPYRIGHT = "Copyright (c) 2022. RFE/RL, Inc. All Rights Reserved."
_WP_TAGLINE = "World news from the wires, as it lands"
_WP_LIKES = ("Like", "Loading...")
_PRESSTV_MIRRORS = ("www.presstv.ir", "www.presstv.co.uk", "www.presstv.tv")
_PRESSTV_COPYRIGHT = "All Rights Reserved. Press TV"
_MIRROR_NOTE = (
    "This article was first published by Radio Free Europe/Radio Liberty and is republished "
    "under a content-sharing agreement."
)
_MIRROR_SIGNUP = "Get the Borderland Times morning briefing in your inbox every weekday."
_MIRROR_SUPPORT = "Independent, reader-funded reporting from Europe's eastern border."
_MIRROR_COPYRIGHT = "© 2022 Borderland Times. All rights reserved."


def _all_captions() -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for cid in _CORPUS for c in _captured(cid).captions))


def _all_player_lines() -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(
            line
            for cid in _CORPUS
            for v in _captured(cid).videos
            for line in (v.title, v.wait, v.error, v.timecode)
        )
    )


def _all_embed_lines() -> tuple[str, ...]:
    return tuple(dict.fromkeys(line for cid in _CORPUS for _, line in _captured(cid).embeds))


BOILERPLATE: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            # as captured in the corpus
            *(line for cid in _CORPUS for line in _captured(cid).header),
            *(line.removeprefix("• ") for cid in _CORPUS for line in _captured(cid).tail),
            *_all_captions(),
            *_all_player_lines(),
            *_all_embed_lines(),
            # placed on the pages around them
            *_RFERL_SKIP,
            _RFERL_COPYRIGHT,
            _WP_TAGLINE,
            _WP_LIKES[1],
            "Your email address will not be published.",
            "Required fields are marked *",
            *_PRESSTV_MIRRORS,
            _PRESSTV_COPYRIGHT,
            _MIRROR_NOTE,
            _MIRROR_SIGNUP,
            _MIRROR_SUPPORT,
            _MIRROR_COPYRIGHT,
        ]
    )
)
"""Every boilerplate string of the corpus and of the pages; none may reach stored text."""


# -- HTML ------------------------------------------------------------------------------------


def _e(text: str) -> str:
    return escape(text, quote=True)


def _paras(paragraphs: Iterable[str], indent: str = "        ") -> str:
    return "\n".join(f"{indent}<p>{_e(p)}</p>" for p in paragraphs)


def _head(page: DemoPage, base: str, title: str, site: str, lang: str, extra: str = "") -> str:
    url = page.url(base)
    iso = page.published.isoformat()
    author = f'\n  <meta name="author" content="{_e(page.author)}">' if page.author else ""
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
  <meta charset="utf-8">
  <title>{_e(title)}</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="description" content="{_e(page.summary)}">{author}
  <meta property="og:site_name" content="{_e(site)}">
  <meta property="og:type" content="article">
  <meta property="og:title" content="{_e(page.title)}">
  <meta property="og:description" content="{_e(page.summary)}">
  <meta property="og:url" content="{_e(url)}">
  <meta property="article:published_time" content="{iso}">
  <link rel="canonical" href="{_e(url)}">{extra}
</head>"""


def _latest(pages: Iterable[DemoPage], base: str) -> str:
    items = "\n".join(
        f'        <li><a href="{_e(p.url(base))}">{_e(p.title)}</a></li>'
        for p in sorted(pages, key=lambda p: p.published, reverse=True)
    )
    return f"      <ul>\n{items}\n      </ul>"


def _rferl_player(video: _Video, n: int) -> str:
    timecode = " ".join(f"<span>{t}</span>" for t in video.timecode.split())
    return f"""        <div class="media-pholder media-pholder--video">
          <div class="c-mmp c-mmp--video" data-id="{n}">
            <div class="c-mmp__poster">
              <img src="/rferl/img/video-{n}.jpg" alt="{_e(video.title)}">
            </div>
            <p class="c-mmp__title">{_e(video.title)}</p>
            <p class="c-spinner">{_e(video.wait)}</p>
            <p class="c-mmp__error">{_e(video.error)}</p>
            <p class="c-mmp__cpanel">{timecode}</p>
          </div>
        </div>"""


def _rferl_body(page: DemoPage) -> str:
    videos = {v.before: v for v in _captured(page.corpus_id).videos} if page.corpus_id else {}
    parts = []
    for i, paragraph in enumerate(page.paragraphs):
        if i in videos:
            parts.append(_rferl_player(videos[i], i))
        parts.append(f"        <p>{_e(paragraph)}</p>")
    return "\n".join(parts)


def _rferl_page(page: DemoPage, base: str, siblings: tuple[DemoPage, ...]) -> str:
    caption = page.captions[0] if page.captions else ""
    slug = page.path.rsplit("/", 1)[-1].removesuffix(".html")
    journalists, undesirable, in_russia, find_out = _RFERL_FOOTER
    skip = "".join(f'<li><a href="#content">{_e(s)}</a></li>' for s in _RFERL_SKIP)
    return f"""{_head(page, base, f"{page.title} | RFE/RL", "RadioFreeEurope/RadioLiberty", "en")}
<body>
  <div class="hdr-20">
    <div class="a11y"><span class="sr-only">Accessibility links</span><ul>{skip}</ul></div>
    <a class="logo" href="{base}/rferl/">RFE/RL</a>
    <nav id="navigation"><ul>
      <li><a href="{base}/rferl/z/ukraine">Ukraine</a></li>
      <li><a href="{base}/rferl/z/russia">Russia</a></li>
      <li><a href="{base}/rferl/z/belarus">Belarus</a></li>
      <li><a href="{base}/rferl/z/central-asia">Central Asia</a></li>
    </ul></nav>
  </div>
  <main id="content">
    <div class="brk-news"><p class="brk-news__label">Breaking News</p></div>
    <div class="container">
      <div class="pg-article">
        <h1 class="title pg-title">{_e(page.title)}</h1>
        <p class="published"><time datetime="{page.published.isoformat()}">
          {page.published:%B %d, %Y %H:%M} GMT</time></p>
        <figure class="media-image">
          <div class="img-wrap"><img src="/rferl/img/{slug}_w1200.jpg" alt="{_e(caption)}"></div>
          <figcaption><span class="caption">{_e(caption)}</span></figcaption>
        </figure>
        <div id="article-content" class="wsw">
        <p class="img-desc">{_e(caption)}</p>
{_rferl_body(page)}
        <ul class="media-block-wrap"><li><a href="{base}/rferl/p/6120.html">
          <span class="img-wrap">16x9 Image</span></a></li></ul>
        <div class="infobox">
          <p>{_e(undesirable)}</p>
          <p>{_e(in_russia)}</p>
          <p><a href="{base}/rferl/a/undesirable-organization-faq/31000001.html">
            {_e(find_out.removesuffix("."))}</a>.</p>
        </div>
        </div>
      </div>
      <aside class="sidebar">
      <h2>Latest</h2>
{_latest(siblings, base)}
      </aside>
    </div>
  </main>
  <footer class="ftr">
    <p>{_e(journalists)}</p>
    <p>{_e(_RFERL_COPYRIGHT)}</p>
  </footer>
</body>
</html>
"""


def _wireblog_page(page: DemoPage, base: str, siblings: tuple[DemoPage, ...]) -> str:
    post_id = 4000 + int(hashlib.sha1(page.path.encode()).hexdigest()[:3], 16)
    embeds = dict(_captured(page.corpus_id).embeds) if page.corpus_id else {}
    parts = []
    for i, paragraph in enumerate(page.paragraphs):
        if i in embeds:  # a lazy-loaded YouTube clip, as WP Rocket renders it
            parts.append(f"""        <div class="rll-youtube-player"
          data-src="https://www.youtube.com/embed/ZhGp0mNwbnk">
          <img src="https://i.ytimg.com/vi/ZhGp0mNwbnk/hqdefault.jpg" alt="{_e(embeds[i])}"
            width="480" height="360">
          <p class="yt-label">{_e(embeds[i])}</p>
        </div>""")
        parts.append(f"        <p>{_e(paragraph)}</p>")
    body = "\n".join(parts)
    share = """        <div class="addtoany_share_save_container addtoany_content">
          <h3 class="addtoany_header">Share this:</h3>
          <ul class="a2a_kit">
            <li><a class="a2a_button_twitter" href="#">Twitter</a></li>
            <li><a class="a2a_button_facebook" href="#">Facebook</a></li>
          </ul>
        </div>"""
    like = f"""        <div class="jp-likes">
          <h3 class="sd-title">Like this:</h3>
          <p class="likes-widget"><span>{_WP_LIKES[0]}</span> <span>{_WP_LIKES[1]}</span></p>
        </div>"""
    return f"""{_head(page, base, f"{page.title} – The Wire Room", "The Wire Room", "en-US")}
<body class="post-template-default single single-post postid-{post_id}">
<div id="page" class="site">
  <a class="skip-link screen-reader-text" href="#content">Skip to content</a>
  <header id="masthead" class="site-header">
    <p class="site-title"><a href="{base}/wireblog/" rel="home">The Wire Room</a></p>
    <p class="site-description">{_e(_WP_TAGLINE)}</p>
    <nav id="site-navigation" class="main-navigation"><ul>
      <li><a href="{base}/wireblog/">Home</a></li>
      <li><a href="{base}/wireblog/world/">World</a></li>
      <li><a href="{base}/wireblog/about/">About</a></li>
    </ul></nav>
  </header>
  <div id="content" class="site-content">
    <div class="top-tools">
{share}
{like}
    </div>
    <main id="main" class="site-main">
      <article id="post-{post_id}"
        class="post-{post_id} post type-post status-publish format-standard hentry category-world">
        <h1 class="entry-title">{_e(page.title)}</h1>
        <p class="posted-on"><time class="entry-date published"
          datetime="{page.published.isoformat()}">{page.published:%B %d, %Y}</time>
          by {_e(page.author or "wiredesk")}</p>
        <div class="entry-content">
{body}
        <div class="reply-box">
          <h3 class="reply-title">Leave a Reply</h3>
          <p class="notes">Your email address will not be published.
            Required fields are marked *</p>
          <form action="{base}/wireblog/wp-comments-post.php" method="post">
            <textarea name="comment"></textarea><input type="submit" value="Post Comment">
          </form>
        </div>
{share}
{like}
        <div class="likes-text"><span>%d</span> bloggers like this:</div>
        </div>
      </article>
    </main>
    <aside id="secondary" class="widget-area">
      <h2 class="widget-title">Recent Posts</h2>
{_latest(siblings, base)}
    </aside>
  </div>
  <footer id="colophon" class="site-footer"><p>Proudly powered by WordPress</p></footer>
</div>
</body>
</html>
"""


def _presstv_page(page: DemoPage, base: str, siblings: tuple[DemoPage, ...]) -> str:
    picture = ""
    if page.captions:
        # The CMS filled the photo's alt/title from a stale library entry (the wrong caption,
        # printed again as the "photo text"); the visible caption below the photo is right.
        wrong, right = page.captions
        picture = f"""        <figure class="news-pic">
          <img src="/presstv/photo/2021/12/14/donfried-kuleba.jpg"
            alt="{_e(wrong)}" title="{_e(wrong)}">
          <figcaption>{_e(right)}</figcaption>
        </figure>
        <p class="photo-text">{_e(wrong)}</p>"""
    crumbs = _BREADCRUMB.replace("\xa0", "&nbsp;")
    for word in ("News", "Foreign Policy", "More"):
        slug = word.replace(" ", "")
        crumbs = crumbs.replace(word, f'<a href="{base}/presstv/Section/{slug}">{word}</a>', 1)
    alternate, roku = _PRESSTV_TAIL
    mirrors = "".join(f'<li><a href="https://{m}">{m}</a></li>' for m in _PRESSTV_MIRRORS)
    return f"""{_head(page, base, page.title, "PressTV", "en")}
<body>
  <div class="top-header">
    <a class="logo" href="{base}/presstv/">Press TV</a>
    <ul class="main-menu">
      <li><a href="{base}/presstv/Section/Iran">Iran</a></li>
      <li><a href="{base}/presstv/Section/WestAsia">West Asia</a></li>
      <li><a href="{base}/presstv/Section/ForeignPolicy">Foreign Policy</a></li>
    </ul>
  </div>
  <div class="main-container">
    <div class="col-md-8">
      <div class="news-box">
        <p class="path">{crumbs}</p>
        <h1 class="main-title">{_e(page.title)}</h1>
        <p class="news-time">{page.published:%A, %d %B %Y %I:%M %p}</p>
{picture}
        <div class="news-text">
{_paras(page.paragraphs)}
        </div>
        <p>{_e(alternate)}</p>
        <ul class="alternate">{mirrors}</ul>
        <p class="app-links"><img src="/presstv/img/roku.png" alt="Roku"> {_e(roku)}</p>
      </div>
    </div>
    <div class="col-md-4">
      <h2>Latest</h2>
{_latest(siblings, base)}
    </div>
  </div>
  <div class="footer"><p>{_e(_PRESSTV_COPYRIGHT)}</p></div>
</body>
</html>
"""


def _mirror_page(page: DemoPage, base: str, siblings: tuple[DemoPage, ...]) -> str:
    picture = ""
    if page.captions:
        picture = f"""        <figure class="lead-photo">
          <img src="/mirror/img/lead.jpg" alt="{_e(page.captions[0])}">
          <figcaption>{_e(page.captions[0])} Photo: RFE/RL</figcaption></figure>"""
    return f"""{_head(page, base, f"{page.title} — Borderland Times", "Borderland Times", "en-GB")}
<body>
  <header class="masthead"><a href="{base}/mirror/">Borderland Times</a>
    <p class="strap">{_e(_MIRROR_SUPPORT)}</p>
    <nav><a href="{base}/mirror/world/">World</a> <a href="{base}/mirror/europe/">Europe</a>
      <a href="{base}/mirror/opinion/">Opinion</a></nav>
  </header>
  <div class="layout">
    <article class="story">
      <h1>{_e(page.title)}</h1>
      <p class="dateline">
        <time datetime="{page.published.isoformat()}">{page.published:%d %B %Y}</time></p>
{picture}
      <div class="story-body">
        <p class="partner-note"><em>{_e(_MIRROR_NOTE)}</em></p>
{_paras(page.paragraphs)}
        <p class="signup"><strong>{_e(_MIRROR_SIGNUP)}</strong></p>
        <p class="support">{_e(_MIRROR_SUPPORT)}</p>
      </div>
    </article>
    <div class="rail">
      <h2>Most read</h2>
{_latest(siblings, base)}
    </div>
  </div>
  <footer><p>{_e(_MIRROR_COPYRIGHT)}</p></footer>
</body>
</html>
"""


_RENDER: dict[str, Callable[[DemoPage, str, tuple[DemoPage, ...]], str]] = {
    "rferl": _rferl_page,
    "wireblog": _wireblog_page,
    "presstv": _presstv_page,
    "mirror": _mirror_page,
}


def render_page(page: DemoPage, base_url: str) -> str:
    """The HTML of one demo page."""
    base = base_url.rstrip("/")
    siblings = tuple(p for p in _pages() if p.outlet == page.outlet)
    return _RENDER[page.outlet](page, base, siblings)


# -- feeds -----------------------------------------------------------------------------------


def _rfc822(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def _newest_first(outlet: str, only: Iterable[str] | None = None) -> list[DemoPage]:
    pages = [p for p in _pages() if p.outlet == outlet]
    if only is not None:
        keep = set(only)
        pages = [p for p in pages if p.corpus_id in keep]
    return sorted(pages, key=lambda p: p.published, reverse=True)


def _content_html(page: DemoPage) -> str:
    return "".join(f"<p>{_e(p)}</p>" for p in page.paragraphs)


def _rss(
    base: str,
    path: str,
    title: str,
    home: str,
    description: str,
    pages: list[DemoPage],
    item: Callable[[DemoPage], str],
) -> str:
    items = "\n".join(item(p) for p in pages)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>{_e(title)}</title>
    <link>{base}{home}</link>
    <description>{_e(description)}</description>
    <language>en</language>
    <lastBuildDate>{_rfc822(pages[0].published)}</lastBuildDate>
    <atom:link href="{base}{path}" rel="self" type="application/rss+xml"/>
{items}
  </channel>
</rss>
"""


def _rferl_rss(base: str) -> str:
    def item(p: DemoPage) -> str:
        url = p.url(base)
        return f"""    <item>
      <title>{_e(p.title)}</title>
      <link>{url}</link>
      <guid isPermaLink="true">{url}</guid>
      <pubDate>{_rfc822(p.published)}</pubDate>
      <dc:creator>{_e(p.author or "")}</dc:creator>
      <category>Ukraine</category>
      <description>{_e(p.summary)}</description>
    </item>"""

    pages = _newest_first("rferl")
    return _rss(base, "/rferl/rss.xml", "RFE/RL - All News", "/rferl/", "All news", pages, item)


def _rferl_atom(base: str) -> str:
    pages = _newest_first("rferl", only=("001", "003"))
    entries = "\n".join(
        f"""  <entry>
    <title>{_e(p.title)}</title>
    <link rel="alternate" type="text/html" href="{_e(p.url(base) + UTM)}"/>
    <id>tag:rferl.demo,{p.published:%Y-%m-%d}:{p.path.rsplit("/", 1)[-1].removesuffix(".html")}</id>
    <published>{p.published.isoformat()}</published>
    <updated>{p.published.isoformat()}</updated>
    <author><name>{_e(p.author or "RFE/RL")}</name></author>
    <summary type="html">{_e(f"<p>{_e(p.summary)}</p>")}</summary>
  </entry>"""
        for p in pages
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>RFE/RL - Ukraine</title>
  <id>tag:rferl.demo,2021:ukraine</id>
  <updated>{pages[0].published.isoformat()}</updated>
  <link rel="self" type="application/atom+xml" href="{base}/rferl/ukraine.atom"/>
  <link rel="alternate" type="text/html" href="{base}/rferl/z/ukraine"/>
{entries}
</feed>
"""


def _wireblog_rdf(base: str) -> str:
    pages = _newest_first("wireblog")
    seq = "\n".join(f'        <rdf:li rdf:resource="{p.url(base)}"/>' for p in pages)
    items = "\n".join(
        f"""  <item rdf:about="{p.url(base)}">
    <title>{_e(p.title)}</title>
    <link>{p.url(base)}</link>
    <dc:creator>{_e(p.author or "wiredesk")}</dc:creator>
    <dc:date>{p.published.isoformat()}</dc:date>
    <dc:subject>World</dc:subject>
    <description>{_e(p.summary)}</description>
    <content:encoded><![CDATA[{_content_html(p)}]]></content:encoded>
  </item>"""
        for p in pages
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
  xmlns="http://purl.org/rss/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/"
  xmlns:content="http://purl.org/rss/1.0/modules/content/">
  <channel rdf:about="{base}/wireblog/feed/rdf/">
    <title>The Wire Room</title>
    <link>{base}/wireblog/</link>
    <description>{_e(_WP_TAGLINE)}</description>
    <dc:date>{pages[0].published.isoformat()}</dc:date>
    <dc:language>en-US</dc:language>
    <items>
      <rdf:Seq>
{seq}
      </rdf:Seq>
    </items>
  </channel>
{items}
</rdf:RDF>
"""


def _presstv_rss(base: str) -> str:
    def item(p: DemoPage) -> str:
        news_id = p.path.split("/")[6]
        return f"""    <item>
      <title>{_e(p.title)}</title>
      <link>{p.url(base)}</link>
      <guid isPermaLink="false">{news_id}</guid>
      <pubDate>{_rfc822(p.published)}</pubDate>
      <description>{_e(p.summary)}</description>
    </item>"""

    pages = _newest_first("presstv")
    return _rss(base, "/presstv/rss.xml", "PressTV", "/presstv/", "Press TV news", pages, item)


def _mirror_rss(base: str) -> str:
    def item(p: DemoPage) -> str:
        return f"""    <item>
      <title>{_e(p.title)}</title>
      <link>{p.url(base)}</link>
      <guid isPermaLink="true">{p.url(base)}</guid>
      <pubDate>{_rfc822(p.published)}</pubDate>
      <description>{_e(_content_html(p))}</description>
    </item>"""

    pages = _newest_first("mirror")
    return _rss(base, "/mirror/feed.xml", "Borderland Times", "/mirror/", "World", pages, item)


_MOVED_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Broken Example – Home</title></head>
<body><header><a href="/broken/">Broken Example</a></header>
<main><h1>Our feeds have moved</h1>
<p>We redesigned our site. Find the news on our home page.</p></main>
</body></html>
"""


def _feed_route(body: str, content_type: str, newest: datetime) -> Route:
    data = body.encode("utf-8")
    etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
    return Route(body=data, content_type=content_type, etag=etag, last_modified=_rfc822(newest))


def build_routes(base_url: str) -> dict[str, Route]:
    """Every feed and page path of the sample outlets (pages also under the feeds' utm query)."""
    base = base_url.rstrip("/")
    routes: dict[str, Route] = {}
    for page in _pages():
        body = render_page(page, base).encode("utf-8")
        routes[page.path] = Route(body=body, content_type=HTML_TYPE)
        routes[page.path + UTM] = Route(body=body, content_type=HTML_TYPE)

    def newest(outlet: str) -> datetime:
        return _newest_first(outlet)[0].published

    routes["/rferl/rss.xml"] = _feed_route(_rferl_rss(base), RSS_TYPE, newest("rferl"))
    routes["/rferl/ukraine.atom"] = _feed_route(_rferl_atom(base), ATOM_TYPE, newest("rferl"))
    routes["/wireblog/feed/rdf/"] = _feed_route(_wireblog_rdf(base), RDF_TYPE, newest("wireblog"))
    routes["/presstv/rss.xml"] = _feed_route(_presstv_rss(base), RSS_TYPE, newest("presstv"))
    routes["/mirror/feed.xml"] = _feed_route(_mirror_rss(base), RSS_TYPE, newest("mirror"))
    routes["/broken/rss.xml"] = Route(
        body=b"<h1>500 Internal Server Error</h1>", status=500, content_type=HTML_TYPE
    )
    routes["/broken/feed/"] = Route(body=_MOVED_PAGE.encode("utf-8"), content_type=HTML_TYPE)
    return routes


_YAML_PLAIN = re.compile(r"^[A-Za-z0-9_-]+$")


def _yaml_str(text: str) -> str:
    return text if _YAML_PLAIN.match(text) else '"' + text.replace('"', '\\"') + '"'


def feeds_yaml(base_url: str) -> str:
    """A feeds.yaml text listing the sample outlets at base_url."""
    base = base_url.rstrip("/")
    out = ["outlets:"]
    for outlet in _OUTLETS:
        out += [
            f"  {outlet.slug}:",
            f"    name: {_yaml_str(outlet.name)}",
            f"    language: {outlet.language}",
            f"    tags: [{', '.join(_yaml_str(t) for t in outlet.tags)}]",
            "    feeds:",
        ]
        for name, path in outlet.feed_paths:
            out.append(f"      - url: {base}{path}")
            if name:
                out.append(f"        name: {_yaml_str(name)}")
    return "\n".join(out) + "\n"
