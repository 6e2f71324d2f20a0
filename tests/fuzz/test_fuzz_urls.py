"""Fuzzing URL canonicalisation and the renderers' link check: any string gives an http(s)
address in one spelling, or None; never an exception."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.provisional import urls

from monitor.canonical import MAX_URL_BYTES, canonical_url
from monitor.render.escape import safe_url
from tests.fuzz.strategies import hostile_text

SCHEMES = ["http", "https", "HTTP", "hTTps", "ftp", "javascript", "data", "file", ""]
HOSTS = [
    "example.com",
    "EXAMPLE.com",
    "www.rferl.org:443",
    "127.0.0.1:8080",
    "[::1]",
    "[::1",
    "xn--80ak6aa92e.com",
    "пример.рф",
    "user:pw@example.com",
    "example.com:99999",
    "example.com:-1",
    "",
]
QUERIES = ["", "?utm_source=x&id=3", "?fbclid=1", "?a=1&a=2", "?%zz", "?q=<script>"]


@st.composite
def url_like(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(SCHEMES))
    host = draw(st.sampled_from(HOSTS))
    path = draw(st.one_of(st.just("/a/story.html"), hostile_text(3)))
    query = draw(st.sampled_from(QUERIES))
    fragment = draw(st.sampled_from(["", "#top", "#" + "x" * 10]))
    return f"{scheme}://{host}{path}{query}{fragment}"


ANY_URL = st.one_of(urls(), url_like(), hostile_text(), st.text(max_size=60))
BASES = st.one_of(st.none(), st.just("https://www.rferl.org/feeds/world.xml"), url_like())


@given(ANY_URL, BASES)
@example("http://[::1", None)
@example("http://evil|<!channel>/", None)  # found by fuzzing: kept as its own canonical form
@example("0", "http://example.com&lt;")  # found by the long profile: courlan unescaped the &lt;
@example("http://example.com:99999/", None)
@example("//evil.example/x", "https://www.rferl.org/")
@example("http://" + "a" * 3000 + ".com/", None)
def test_canonical_urls_are_http_bounded_and_stable(url: str, base: str | None) -> None:
    result = canonical_url(url, base)
    if result is None:
        return
    parts = urlsplit(result)
    assert parts.scheme in ("http", "https") and parts.hostname
    assert not parts.fragment and parts.netloc == parts.netloc.lower()
    assert len(result.encode()) <= MAX_URL_BYTES
    assert canonical_url(result) == result  # one spelling: canonical of canonical is itself


@given(ANY_URL)
@example("HTTP://<")  # found by fuzzing: the host was not checked
@example("http://evil|<!channel>/")  # ... so a Slack link could carry a mention
@example('http://a"onmouseover=x/')
@example("javascript:alert(1)")
@example("https://trusted.example@evil.example/")
@example("https://example.com/a b")
@example("https://example.com/(x)|y>z")
def test_a_safe_url_is_http_and_holds_nothing_any_syntax_reads_as_markup(url: str) -> None:
    result = safe_url(url)
    if result is None:
        return
    assert urlsplit(result).scheme in ("http", "https")
    assert not set(result) & set(' <>"`|()\\{}^\r\n\t') and result.isprintable()
    assert "@" not in urlsplit(result).netloc
