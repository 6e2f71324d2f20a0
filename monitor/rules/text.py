"""Text normalisation for matching: words, their match keys, sentences and paragraphs.

Matching compares *keys*, never raw text. Text is folded character for character, so every offset
into the folded text is an offset into the original: letters are lower-cased and stripped of
diacritics (Zelenskýy → zelenskyy), and everything that is not a letter or digit (punctuation,
apostrophes, hyphens, dots, whitespace) becomes a space. The words of the folded text are the
keys. A *shape* is the same without lower-casing: it checks case-sensitive aliases ("US" is not
"us"). Patterns are folded by the same functions, so "Kyiv’s" is the words "kyiv s" whether it is
in an alias or in an article, and "U.S." is "u s".

Hyphens and apostrophes inside a word split it ("Russia-Ukraine" contains "russia"); each such
compound is also tried joined ("build-up" as "buildup", "Luhans'k" as "luhansk"), so a pattern
written either way matches either spelling (see `monitor.rules.matcher`).

The work per article is a handful of passes in C (lower, translate, split, join, accumulate):
Python-level loops over the words are what made matching slow.
"""

from __future__ import annotations

import re
import string
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate, compress
from operator import add
from typing import NamedTuple

APOSTROPHES = "'’ʼ‘`´"
HYPHENS = "-‐‑"  # hyphen-minus, hyphen, non-breaking hyphen (not dashes, which separate)
JOINERS = APOSTROPHES + HYPHENS  # split a word, and are also tried as joining it
_JUNCTION = re.compile(rf"(?<=[^\W_])[{re.escape(JOINERS)}](?=[^\W_])")
_ASCII_SEPARATORS = str.maketrans(
    {c: " " for c in string.punctuation + string.whitespace + "\x00\x7f"}
    | {chr(i): " " for i in range(32)}
)
_BLOCK = 1024  # stream characters per block of Scanned._spaces_before_block
_DISTINCT_LIMIT = 24  # up to this many distinct non-ASCII characters, str.replace each one


def _fold_table(lower: bool) -> dict[int, str]:
    """Non-ASCII characters that fold to one other character: letters with diacritics to their
    base letter, punctuation, symbols and spaces to a space."""
    table: dict[int, str] = {}
    for code in range(0x80, 0x3000):
        char = chr(code)
        category = unicodedata.category(char)
        if category[0] in "PSZC" or char in "ʼʹ":
            table[code] = " "
        elif category[0] == "L":
            base = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            base = base.lower() if lower else base
            if len(base) == 1 and base != char:
                table[code] = base
    return table


_FOLD = _fold_table(lower=True)
_FOLD_CASE = _fold_table(lower=False)


def fold(text: str, lower: bool = True) -> str:
    """`text` as matched, of the same length: letters lower-cased (unless `lower` is False) and
    without diacritics, every other character a space."""
    low = text.lower() if lower else text
    if len(low) != len(text):  # a few letters lower-case to two characters (İ)
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    if not low.isascii():
        table = _FOLD if lower else _FOLD_CASE
        distinct = [c for c in set(low) if ord(c) > 0x7F]
        if len(distinct) <= _DISTINCT_LIMIT:  # English news: a few quotes and accents
            for char in distinct:
                low = low.replace(char, table.get(ord(char), char))
        else:
            low = low.translate(table)
    return low.translate(_ASCII_SEPARATORS)  # C's fast path when the text is ASCII by now


def keys(text: str) -> list[str]:
    """The match keys of the words of `text`."""
    return fold(text).split()


def shapes(text: str) -> list[str]:
    """The words of `text` as case-sensitive aliases compare them."""
    return fold(text, lower=False).split()


def _positions(text: str, char: str) -> list[int]:
    """Every offset of `char` in `text` (str.find is far quicker than a regex scan)."""
    found, at = [], text.find(char)
    while at != -1:
        found.append(at)
        at = text.find(char, at + 1)
    return found


_DROP_JOINERS = str.maketrans("", "", JOINERS)


def _possessive(text: str, joiner: int) -> bool:
    after = joiner + 2
    return (
        text[joiner] in APOSTROPHES
        and text[joiner + 1] in "sS"
        and (after == len(text) or not text[after].isalnum())
    )


def _joined_key(compound: str) -> str:
    """The key of a compound written as one word ("Build-Up" -> "buildup")."""
    if compound.isascii():
        return compound.translate(_DROP_JOINERS).lower()
    return fold(compound).replace(" ", "")


def _compound_span(text: str, junction: int) -> tuple[int, int]:
    """The letters and joiners around a joiner: "pro-Russian" in "the pro-Russian side"."""
    start = junction - 1
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    end = junction + 1
    while True:
        while end < len(text) and text[end].isalnum():
            end += 1
        if end < len(text) - 1 and text[end] in JOINERS and text[end + 1].isalnum():
            end += 1
            continue
        return start, end


def join_compounds(text: str) -> str | None:
    """`text` with each hyphenated or apostrophised compound written as one word ("build-up" →
    "buildup"); None when it has none."""
    if not _JUNCTION.search(text):
        return None
    return _JUNCTION.sub("", text)


# --------------------------------------------------------------------------------------------------
# A field of an article, scanned


class Compound(NamedTuple):
    """Words joined by hyphens or apostrophes: the first and last word's indexes, and where the
    first word's key starts in the stream."""

    first: int
    last: int
    at: int


@dataclass
class Scanned:
    """One field's keys and the stream the automaton runs over, with the way back to offsets.

    `stream` is " key0 key1 ... keyN " (a space before and after every key), so a pattern
    " troops " can only match whole words and " sanction" only at a word's start.

    The automaton reports stream positions. Deciding a watch turns only a few of them into text
    offsets (a case-sensitive alias, a sentence, a paragraph: `offset_at`) or word indexes
    (NEAR/N: `word_index`), from the few places where stream and text drift apart and by
    counting spaces in C. The per-word tables (`starts`, `token_at`) take a pass in Python over
    every word: only a match's details, which want every hit's offsets, build them."""

    text: str
    keys: list[str]
    stream: str
    folded: str = field(repr=False)  # fold(text): as long as the text, separators as spaces
    _parts: list[str] = field(repr=False)  # the folded text split at every single space

    @classmethod
    def of(cls, text: str) -> Scanned:
        if not text.isascii() and not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)  # "e" + combining accent is one letter
        folded = fold(text)
        parts = folded.split(" ")
        ks = [part for part in parts if part]
        return cls(text, ks, " " + " ".join(ks) + " ", folded, parts)

    # --- stream positions and text offsets, for the few positions asked about ----------------

    @cached_property
    def _drift(self) -> tuple[list[int], list[int], list[int]]:
        """Where text offsets and stream positions drift apart, as three aligned lists: the
        stream position and the text offset of the word after each run of spaces that is not
        one space between two words, and text offset minus stream position from that word on.

        The stream has one space before each key; the folded text has the same keys with runs
        of spaces of any length (", " is two), so the difference changes only at its leading
        spaces and at its runs of two or more: a hundred or so in a 1,000-word article. (The
        lists start with the first key, so every key has an entry at or before it.)"""
        folded = self.folded
        leading = len(folded) - len(folded.lstrip(" "))
        drift = leading - 1  # the first key: after one space in the stream, `leading` in the text
        in_stream, in_text, drifts = [1], [leading], [drift]
        # str.find for two spaces, not a regex scan: the regex engine costs a third more here
        find, length = folded.find, len(folded)
        start = find("  ", leading)
        while start >= 0:
            end = start + 2
            while end < length and folded[end] == " ":
                end += 1
            drift += end - start - 1  # between two words, the stream keeps one space
            in_stream.append(end - drift)
            in_text.append(end)
            drifts.append(drift)
            start = find("  ", end)
        return in_stream, in_text, drifts

    def offset_at(self, stream_pos: int) -> int:
        """The text offset of the key that starts at `stream_pos` in the stream."""
        in_stream, _, drifts = self._drift
        return stream_pos + drifts[bisect_right(in_stream, stream_pos) - 1]

    def stream_pos_at(self, offset: int) -> int:
        """The stream position of the key of the word that starts at text offset `offset`."""
        _, in_text, drifts = self._drift
        return offset - drifts[bisect_right(in_text, offset) - 1]

    @cached_property
    def _spaces_before_block(self) -> list[int]:
        """The spaces in the stream before each block of _BLOCK characters: a few counts in C,
        so that a word index counts at most one block."""
        stream = self.stream
        blocks = (stream.count(" ", at, at + _BLOCK) for at in range(0, len(stream), _BLOCK))
        return list(accumulate(blocks, initial=0))

    def word_index(self, stream_pos: int) -> int:
        """The index of the word whose key starts at `stream_pos`: the spaces before it, less
        the stream's leading one."""
        block = stream_pos // _BLOCK
        in_block = self.stream.count(" ", block * _BLOCK, stream_pos)
        return self._spaces_before_block[block] + in_block - 1

    def text_span(self, stream_pos: int, words: int) -> tuple[int, int]:
        """Text offsets from the start of the key at `stream_pos` to the end of the `words`-th
        key from there."""
        stream, last = self.stream, stream_pos
        for _ in range(words - 1):
            last = stream.index(" ", last) + 1
        return self.offset_at(stream_pos), self.offset_at(last) + stream.index(" ", last) - last

    def locate(self, word: int, near: Compound) -> int:
        """The stream position of the key of word `word`, counted from a compound close by."""
        keys = self.keys
        if word >= near.first:
            return near.at + sum(map(len, keys[near.first : word])) + word - near.first
        return near.at - sum(map(len, keys[word : near.first])) - (near.first - word)

    # --- per-word tables, for a match's details -----------------------------------------------

    @cached_property
    def _stream_starts(self) -> list[int]:
        """Where each key starts in `stream`."""
        before = accumulate(map(len, self.keys), initial=0)  # key characters before key i
        return list(map(add, before, range(1, len(self.keys) + 1)))

    @cached_property
    def starts(self) -> list[int]:
        """Where each word starts in `text`."""
        parts = self._parts
        part_starts = map(add, accumulate(map(len, parts), initial=0), range(len(parts)))
        return list(compress(part_starts, parts))

    def token_at(self, stream_pos: int) -> int:
        """The index of the word whose key starts at `stream_pos` in the stream."""
        return bisect_right(self._stream_starts, stream_pos) - 1

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Offsets in `text` from the start of word `first` to the end of word `last`."""
        starts = self.starts
        return starts[first], starts[last] + len(self.keys[last])

    # --- hyphenated and apostrophised compounds -----------------------------------------------

    def compounds(self, wanted: Callable[[str], bool] | None = None) -> list[Compound]:
        """Runs of words joined by hyphens or apostrophes; only those whose joined key `wanted`
        accepts (there are few, and only they have their words located)."""
        text = self.text
        junctions = sorted(
            at for joiner in JOINERS if joiner in text for at in _positions(text, joiner)
        )
        runs: list[Compound] = []
        covered = -1
        for at in junctions:
            if at <= covered or not (0 < at < len(text) - 1):
                continue
            if not (text[at - 1].isalnum() and text[at + 1].isalnum()):
                continue
            if _possessive(text, at):
                continue  # "Kyiv's" is Kyiv: joined, "kyivs" would only find plurals
            start, end = _compound_span(text, at)
            covered = end
            if wanted is not None and not wanted(_joined_key(text[start:end])):
                continue
            if (compound := self._compound(start, end)) is not None:
                runs.append(compound)
        return runs

    def _compound(self, start: int, end: int) -> Compound | None:
        """The words of text[start:end] if a word starts at `start` and more than one does
        (a letter may fold to a space, or a combining mark start a word)."""
        folded = self.folded
        if folded[start] == " " or (start > 0 and folded[start - 1] != " "):
            return None
        words = sum(1 for part in folded[start:end].split(" ") if part)
        if words < 2:
            return None
        at = self.stream_pos_at(start)
        first = self.word_index(at)
        return Compound(first, first + words - 1, at)

    # --- sentences and paragraphs ---------------------------------------------------------------

    @cached_property
    def sentence_ends(self) -> list[int]:
        """Offsets where sentences end (each is the start of the gap before the next)."""
        return sorted(self._gap_ends + self._line_breaks)  # sentence_ends(text)

    @cached_property
    def _gap_ends(self) -> list[int]:
        """The ends of sentences that are not line breaks."""
        return gap_ends(self.text)

    @cached_property
    def _line_breaks(self) -> list[int]:
        return line_breaks(self.text)

    @cached_property
    def sentence_spans(self) -> list[tuple[int, int]]:
        """Sentence i (as `sentence_of` counts) as (start, end); empty ones are (start, start)."""
        return sentence_spans(self.text, self.sentence_ends)

    @cached_property
    def paragraph_ends(self) -> list[int]:
        """Offsets where paragraphs end, for numbering them: the line breaks that end sentences.
        Between two words, there is one of them exactly where there is one of paragraph_ends(text)
        (the whitespace around a line break has no word), so they number the paragraphs of words
        alike; and the sentences' ends in the stream are then theirs and the other ends'."""
        return self._line_breaks

    def sentence_of(self, offset: int) -> int:
        return bisect_right(self.sentence_ends, offset)

    def paragraph_of(self, offset: int) -> int:
        return bisect_right(self.paragraph_ends, offset)

    def unit_of(self, unit: str, offset: int) -> int:
        """The number of the sentence or paragraph (`unit`) holding `offset`."""
        ends = self.sentence_ends if unit == "sentence" else self.paragraph_ends
        return bisect_right(ends, offset)

    def ends_in_stream(self, unit: str) -> list[int]:
        """The ends of sentences or paragraphs (`unit`) as stream positions: the key at stream
        position `at` is in unit bisect_right(ends_in_stream(unit), at), the same number as
        unit_of(unit, offset_at(at)), one bisect and no offset for each of a term's hits."""
        if unit == "sentence":
            return self._sentence_ends_in_stream
        return self._paragraph_ends_in_stream

    @cached_property
    def _sentence_ends_in_stream(self) -> list[int]:
        # _in_stream keeps the order, so the two lists merge as the offsets would
        return sorted(self._in_stream(self._gap_ends) + self._paragraph_ends_in_stream)

    @cached_property
    def _paragraph_ends_in_stream(self) -> list[int]:
        return self._in_stream(self.paragraph_ends)

    def _in_stream(self, offsets: list[int]) -> list[int]:
        """For each text offset (ascending), the first stream position whose text offset is at
        or after it. Text offset = stream position + drift, and the drift only grows (by a
        run's extra spaces, where the text skips ahead), so it is a strictly rising function."""
        in_stream, in_text, drifts = self._drift
        next_keys = [*in_stream[1:], len(self.stream)]  # where each run's stretch ends
        found = []
        for offset in offsets:
            run = bisect_right(in_text, offset) - 1
            if run < 0:  # before the first key: every key is after it
                found.append(in_stream[0])
                continue
            at = offset - drifts[run]  # or in the spaces skipped before the next run's key
            found.append(at if at < next_keys[run] else next_keys[run])
        return found


# --------------------------------------------------------------------------------------------------
# Sentences


# Words after which a full stop does not end the sentence.
_ABBREVIATIONS = [
    *("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Gen", "Lt", "Col", "Maj", "Sgt", "Capt", "Cmdr"),
    *("Adm", "Sen", "Rep", "Gov", "Pres", "Amb", "Rev", "Gens", "No", "vs", "etc", "approx"),
    *("Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec"),
    *("Inc", "Ltd", "Co", "Corp", "est"),
]
# A sentence ends at . ! ? or … (with closing quotes/brackets) before spaces and then a capital,
# a digit or an opening quote; or at a line break. A dot after an abbreviation, an initial ("A.")
# or a dotted abbreviation ("U.S.") does not end one. _SENTENCE_END says where; it is searched as
# one regex per terminator, each starting with its terminator as a literal: the regex engine
# then skips to the next one as str.find (memchr) does, where a regex starting with a character
# class checks it at every character, five times slower. The few dots that match are then
# checked in Python (lookbehinds in the regex cost three times more).
_ABBREVIATIONS_FOLDED = frozenset(a.casefold() for a in _ABBREVIATIONS)
_LOWER = "a-zà-ÿа-яёіїєґ"
_TERMINATORS = ".!?…"
_AFTER_TERMINATOR = (
    rf"[{_TERMINATORS}]*[\"'”’»)\]]*(?P<gap>[ \t\r\f\v]+)(?=[\"'“‘«(\[]?(?![{_LOWER}])[^\W_])"
)
_SENTENCE_END = re.compile(rf"[{_TERMINATORS}]{_AFTER_TERMINATOR}")
_SENTENCE_END_AT = {char: re.compile(re.escape(char) + _AFTER_TERMINATOR) for char in _TERMINATORS}


def sentence_ends(text: str) -> list[int]:
    """Offsets of the gaps between sentences: "Mr. Blinken" and "U.S. officials" do not end one."""
    return sorted(gap_ends(text) + line_breaks(text))  # a gap is never a line break: no duplicates


def gap_ends(text: str) -> list[int]:
    """The ends of sentences at a terminator, before spaces (offsets of the spaces)."""
    return [m.start("gap") for m in _sentence_end_matches(text) if not _after_abbreviation(text, m)]


def line_breaks(text: str) -> list[int]:
    """The line breaks, each of which ends a sentence (the first of a blank line's)."""
    if "\n" not in text:
        return []
    return [at for at in _positions(text, "\n") if at == 0 or text[at - 1] != "\n"]


def _sentence_end_matches(text: str) -> Iterator[re.Match[str]]:
    """What _SENTENCE_END.finditer(text) finds. A match starts at a terminator, and is the one
    its terminator's regex finds there; one starting inside an earlier match (the "!" of "?!",
    taken whole by the "?" one) is not one finditer would find."""
    at = _SENTENCE_END_AT
    found = [m for char in _TERMINATORS if char in text for m in at[char].finditer(text)]
    found.sort(key=re.Match.start)
    resume = 0
    for match in found:
        if match.start() >= resume:
            resume = match.end()
            yield match


def paragraph_ends(text: str) -> list[int]:
    """Offsets of the gaps between paragraphs: where the whitespace around each line break
    starts. (A regex for "whitespace, line break, whitespace" tries at every character.)"""
    ends: list[int] = []
    resume = 0
    for at in _positions(text, "\n"):
        if at < resume:
            continue  # in the whitespace after the last break (a blank line)
        start = at
        while start > resume and text[start - 1].isspace():
            start -= 1
        resume = at + 1
        while resume < len(text) and text[resume].isspace():
            resume += 1
        ends.append(start)
    return ends


def _after_abbreviation(text: str, m: re.Match[str]) -> bool:
    dot = m.start()
    if text[dot] != ".":
        return False
    start = dot
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot]
    return len(word) == 1 or "." in word or word.casefold() in _ABBREVIATIONS_FOLDED


def sentence_spans(text: str, ends: list[int] | None = None) -> list[tuple[int, int]]:
    """Each sentence of `text` as (start, end), surrounding whitespace excluded; an empty one
    (text that is only whitespace) is (start, start), so the list lines up with `ends`."""
    spans = []
    start = 0
    for end in [*(sentence_ends(text) if ends is None else ends), len(text)]:
        piece = text[start:end]
        stripped = piece.strip()
        lead = len(piece) - len(piece.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))
        start = end
    return spans
