"""Hostile text for the fuzz tests: random Unicode mixed with the pieces attacks are made of."""

from __future__ import annotations

from hypothesis import strategies as st

# Markup of every output syntax, mentions, header and line forgery, bidi overrides, template
# syntax, XML and HTML specials, and characters that are not text at all.
ATTACK_PIECES = [
    "<!channel>",
    "<!here|here>",
    "<@U123>",
    "<#C123>",
    "@everyone",
    "<http://evil.example|click>",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "[x](javascript:alert(1))",
    "![i](http://evil/i.png)",
    "<javascript:alert(1)>",
    "*bold* _it_ ~s~ `code` ```block```",
    "# Heading",
    "1. ",
    "- ",
    "> quote",
    "|a|b|",
    "\r\nBcc: x@evil.example\r\n",
    "\n",
    "\r",
    "\u2028",
    "\u0085",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\u200b",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x1b;",
    "{{ 7*7 }}",
    "{% raw %}",
    "{# c #}",
    "]]>",
    "<![CDATA[",
    "\\",
    "%0d%0a",
    "İ",
    "ß",
    "Zelenskyy’s",
    "e\u0301",
    "🇺🇦",
    "\ud7ff",
    "\U0010ffff",
]


def hostile_text(max_pieces: int = 8) -> st.SearchStrategy[str]:
    """Strings made of attack pieces and arbitrary Unicode (surrogates excluded: a str from a
    decoded document never holds one)."""
    piece = st.one_of(
        st.sampled_from(ATTACK_PIECES),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    )
    return st.lists(piece, max_size=max_pieces).map("".join)
