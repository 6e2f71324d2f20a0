"""Recurring boilerplate lines: generic seed patterns and per-outlet line keys (pure functions).

Two layers keep page chrome out of stored text. ``SEED_PATTERNS`` knows the generic widgets any
site has (share and like buttons, comment forms, media-player residue, skip links). Everything
outlet-specific is learned: the store counts, per outlet, on how many distinct pages each
``line_key`` appeared (``page_keys`` gives one page's contribution), and a key seen on enough
pages becomes part of the ``learned`` set that ``clean`` drops.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

MAX_LEARNABLE_CHARS = 600
"""Lines longer than this never become learned boilerplate.

A long line recurring on many pages of one outlet is far more often a story paragraph repeated in
follow-up articles (background, a standing quote) than chrome; legal footers and disclaimers run
to a few hundred characters (RFE/RL's longest is ~330), so 600 keeps them learnable.
"""

SHORT_LINE = 60  # characters; chrome lines are short, news sentences are not

_BULLETS = "-•*·–—▪►→ \t"
_DIGIT = re.compile(r"\d")
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"

SEED_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # skip navigation and banners
        r"accessibility links|skip to (?:the )?(?:main )?(?:content|navigation|search)",
        r"breaking news:?",
        # share / like widgets (WordPress, Jetpack, AddToAny and the like)
        r"(?:share|like) this(?: article| story| post)?[:!]?",
        r"(?:%d|\d+) bloggers? likes? this[:.]?",
        r"(?:share (?:on|via) )?(?:facebook|twitter|x|telegram|whatsapp|e-?mail|print|linkedin"
        r"|reddit|copy link)",
        # comment forms
        r"leave a (?:reply|comment)(?: cancel reply)?",
        r"your email address will not be published\.?(?: required fields are marked \*)?",
        r"required fields are marked \*",
        # media players: spinners, errors, time codes, lazy-loaded video thumbnails
        r"please wait\.*|loading\.*",
        r"no media source currently available",
        r"(?:\d{1,2}:)?\d{1,2}:\d{2}(?: (?:\d{1,2}:)?\d{1,2}:\d{2})*",
        r"youtube video thumbnail",
        r"advertisement|sponsored content",
        # a dateline alone: "Tuesday, 14 December 2021 04:19 PM", "Published December 2, 2021"
        r"(?:(?:published|updated|posted)(?: on)?:? )?(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,? )?"
        rf"(?:\d{{1,2}} {_MONTH},? \d{{4}}|{_MONTH} \d{{1,2}},? \d{{4}})"
        r"(?:,? (?:at )?\d{1,2}:\d{2}(?: ?[ap]\.?m\.?)?(?: [a-z]{2,4})?)?",
    )
)
"""Generic web boilerplate, matched against a whole line (bullets and spacing ignored)."""

# One alternation fullmatches a line exactly when one of the patterns does, and costs one regex
# call per line instead of one per pattern (the stage checks every line of every page).
_ANY_SEED = re.compile("|".join(f"(?:{p.pattern})" for p in SEED_PATTERNS), re.IGNORECASE)


def _squash(line: str) -> str:
    return " ".join(line.split())


def _core(line: str) -> str:
    """The line without leading list bullets, with single spaces: what patterns and keys look at."""
    return _squash(line).lstrip(_BULLETS)


def paragraphs(text: str) -> list[str]:
    """Split extracted text into its non-empty lines, each whitespace-normalised."""
    return [squashed for line in text.splitlines() if (squashed := _squash(line))]


def line_key(line: str) -> str:
    """A short stable key of a line: case-folded, bullets and spacing ignored.

    Digits count as 0 in short lines and in lines that are mostly figures (time codes, "12
    comments", "Copyright 2021"), so such chrome recurs; in a sentence they are kept, so story
    lines that differ by a number ("an estimated 100,000 troops" / "127,000 troops") stay
    distinct and are never learned as boilerplate."""
    folded = _core(line).casefold()
    if len(folded) <= SHORT_LINE or _mostly_figures(folded):
        folded = _DIGIT.sub("0", folded)
    return hashlib.blake2b(folded.encode("utf-8"), digest_size=8).hexdigest()


def _mostly_figures(text: str) -> bool:
    letters = sum(ch.isalpha() for ch in text)
    digits = sum(ch.isdigit() for ch in text)
    return digits > letters


def is_seed_boilerplate(line: str) -> bool:
    """Whether a line is generic web boilerplate (one of SEED_PATTERNS matches all of it)."""
    return _ANY_SEED.fullmatch(_core(line)) is not None


def page_keys(lines: Iterable[str]) -> frozenset[str]:
    """The distinct keys one page contributes to its outlet's counts (long lines never do)."""
    return frozenset(
        line_key(line) for line in lines if 0 < len(_core(line)) <= MAX_LEARNABLE_CHARS
    )


def clean(lines: Sequence[str], learned: frozenset[str]) -> list[str]:
    """The lines that are neither seed boilerplate nor learned boilerplate of the outlet."""
    return drop_learned([line for line in lines if not is_seed_boilerplate(line)], learned)


def drop_learned(lines: Sequence[str], learned: frozenset[str]) -> list[str]:
    """The lines that are not learned boilerplate of the outlet (for lines already seed-clean)."""
    if not learned:
        return list(lines)
    return [line for line in lines if line_key(line) not in learned]
