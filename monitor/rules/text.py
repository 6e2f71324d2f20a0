"""Text normalisation for matching: words, their match keys, sentences and paragraphs.

Matching compares *keys*, never raw text. A word's key is the word case-folded, with diacritics
removed (Zelenskyy, Zelenskýy), apostrophes unified and dropped ("Kyiv’s" → "kyiv", possessive
's removed; "Luhans'k" → "luhansk"), so the patterns and the text are normalised by the same
function. A *shape* is the same without case folding: it checks case-sensitive aliases ("US" is
not "us").

Hyphens: "build-up" is two words ("build", "up") joined by a hyphen. The text is scanned with
hyphens splitting words, so "Russia-Ukraine" contains "russia"; each hyphenated compound is also
tried joined ("buildup"), so a pattern written either way matches either spelling (see
`monitor.rules.matcher`). Dots split words too, so "U.S." is the two words "u s".

Offsets are always into the original field text, so hits can be highlighted where they are.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate

APOSTROPHES = "'’ʼ‘`´"
HYPHENS = "-‐‑"  # hyphen-minus, hyphen, non-breaking hyphen (not dashes, which separate)
# Letters/digits of any script, with their combining marks (decomposed text keeps them apart).
_LETTER = r"[^\W_]"
_MARKS = "\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u20d0-\u20ff"
_WORD = rf"{_LETTER}(?:{_LETTER}|[{_MARKS}])*"
TOKEN = re.compile(rf"{_WORD}(?:[{APOSTROPHES}]{_WORD})*")
_JUNCTION = re.compile(rf"(?<={_LETTER})[{HYPHENS}](?={_LETTER})")
_APOSTROPHE_TABLE = str.maketrans("", "", APOSTROPHES)
# Letters NFKD does not decompose into a base letter and a mark.
_FOLD = str.maketrans(
    {"ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ı": "i", "æ": "ae", "Æ": "AE"}
)
_MAX_CACHE = 200_000
_keys: dict[str, str] = {}
_shapes: dict[str, str] = {}


def word_shape(word: str) -> str:
    """A word as matched case-sensitively: no diacritics, no apostrophes, no possessive 's."""
    shape = _shapes.get(word)
    if shape is None:
        if len(_shapes) > _MAX_CACHE:
            _shapes.clear()
        shape = _shapes[word] = _compute_shape(word)
    return shape


def word_key(word: str) -> str:
    """A word as matched by default: its shape, case-folded."""
    key = _keys.get(word)
    if key is None:
        if len(_keys) > _MAX_CACHE:
            _keys.clear()
        key = _keys[word] = word_shape(word).casefold()
    return key


def _compute_shape(word: str) -> str:
    if len(word) > 2 and word[-2] in APOSTROPHES and word[-1] in "sS":
        word = word[:-2]  # possessive: "Kyiv's", "NATO’s"
    word = word.translate(_APOSTROPHE_TABLE)
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The words of `text` (hyphens and dots split words)."""
    return TOKEN.findall(text)


def keys(text: str) -> list[str]:
    """The match keys of the words of `text`."""
    return [word_key(w) for w in TOKEN.findall(text)]


def join_compounds(text: str) -> str | None:
    """`text` with each hyphenated compound written as one word ("build-up" → "buildup");
    None when it has none."""
    if not _JUNCTION.search(text):
        return None
    return _JUNCTION.sub("", text)


# --------------------------------------------------------------------------------------------------
# A field of an article, scanned


@dataclass
class Scanned:
    """One field's words (offsets into `text`) and the key stream the automaton runs over.

    `stream` is " key0 key1 ... keyN " (a space before and after every key), so a pattern
    " troops " can only match whole words and " sanction" only at a word's start."""

    text: str
    spans: list[tuple[int, int]]
    words: list[str]
    keys: list[str]
    stream: str
    starts: list[int]  # where each key starts in `stream`

    @classmethod
    def of(cls, text: str) -> Scanned:
        found = [(m.span(), m.group()) for m in TOKEN.finditer(text)]
        spans = [span for span, _ in found]
        words = [word for _, word in found]
        ks = [word_key(w) for w in words]
        starts = list(accumulate((len(k) + 1 for k in ks), initial=1))
        return cls(text, spans, words, ks, " " + " ".join(ks) + " ", starts[:-1])

    def token_at(self, stream_pos: int) -> int:
        """The index of the word whose key starts at `stream_pos` in the stream."""
        return bisect_right(self.starts, stream_pos) - 1

    def compounds(self) -> list[tuple[int, int]]:
        """Runs of words joined by single hyphens, as (first, last) word indexes."""
        runs: list[tuple[int, int]] = []
        for m in _JUNCTION.finditer(self.text):
            left = bisect_right(self.spans, (m.start(), 1 << 62)) - 1
            if left < 0 or left + 1 >= len(self.spans):
                continue
            if runs and runs[-1][1] == left:
                runs[-1] = (runs[-1][0], left + 1)
            else:
                runs.append((left, left + 1))
        return runs

    @cached_property
    def sentence_ends(self) -> list[int]:
        """Offsets where sentences end (each is the start of the gap before the next)."""
        return sentence_ends(self.text)

    @cached_property
    def paragraph_ends(self) -> list[int]:
        return [m.start() for m in _PARAGRAPH_BREAK.finditer(self.text)]

    def sentence_of(self, offset: int) -> int:
        return bisect_right(self.sentence_ends, offset)

    def paragraph_of(self, offset: int) -> int:
        return bisect_right(self.paragraph_ends, offset)


# --------------------------------------------------------------------------------------------------
# Sentences


_PARAGRAPH_BREAK = re.compile(r"\s*\n\s*")
# A sentence ends at . ! ? or … (with closing quotes/brackets) before whitespace and a capital,
# digit or opening quote; or at a line break.
_SENTENCE_END = re.compile(
    r"[.!?…]+[\"'”’»)\]]*(?P<gap>\s+)(?=[\"'“‘«(\[]?[\d\w])|(?P<line>\s*\n\s*)"
)
# Words after which a full stop does not end the sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "gen",
        "lt",
        "col",
        "maj",
        "sgt",
        "capt",
        "cmdr",
        "adm",
        "sen",
        "rep",
        "gov",
        "pres",
        "amb",
        "rev",
        "gens",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "no",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "corp",
        "approx",
        "est",
    ]
)


def sentence_ends(text: str) -> list[int]:
    """Offsets of the gaps between sentences: "Mr. Blinken" and "U.S. officials" do not end one."""
    ends = []
    for m in _SENTENCE_END.finditer(text):
        if m.group("line") is not None:
            ends.append(m.start("line"))
            continue
        gap = m.start("gap")
        if "\n" in m.group("gap"):  # a line break always ends the sentence
            ends.append(gap)
            continue
        if _is_abbreviation(text, m.start()) or not _starts_sentence(text, m.end()):
            continue
        ends.append(gap)
    return ends


def _is_abbreviation(text: str, dot: int) -> bool:
    start = dot
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot]
    # "U.S." or "A." (an initial) end in a dot without ending the sentence
    return word.casefold() in _ABBREVIATIONS or "." in word or len(word) == 1


def _starts_sentence(text: str, at: int) -> bool:
    while at < len(text) and text[at] in "\"'“‘«([":
        at += 1
    return at < len(text) and (text[at].isupper() or text[at].isdigit())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Each sentence of `text` as (start, end), surrounding whitespace excluded."""
    spans = []
    start = 0
    for end in [*sentence_ends(text), len(text)]:
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
        start = end
    return spans
