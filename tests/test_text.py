"""The scanned text's ways from stream positions back to text offsets, words, sentences and
paragraphs: the quick ones the matcher decides with must agree with the plain definitions."""

from __future__ import annotations

import random
import re
from bisect import bisect_right

import pytest

from monitor.rules.text import (
    _SENTENCE_END,
    Scanned,
    _after_abbreviation,
    paragraph_ends,
    sentence_ends,
)

AWKWARD = [
    "",
    "   ",
    "Troops",
    " Troops",
    "   Troops  massed ,, near   the border.  ",
    "«US» officials, NATO’s chief — and the E.U. — met.",
    "Zelenskýy's pro-Russian build-up\u3000next word",  # U+3000 folds to itself, not a space
    "e\u0301te\u0301 a\u0301 Paris",  # combining accents (normalised to NFC)
    "He said: “Go!” Then?! “Yes…” Mr. Blinken left. U.S. officials agreed.\nNext.",
    "one\n\n  two \n three\r\nfour\n",
    ". Yes?! No",
]


def _texts() -> list[str]:
    rng = random.Random(7)
    pieces = list("ab Z.!?…\n\t \u00a0\u3000é-'’\"”“(A1") + ["  ", "\n\n", " \n ", "U.S. ", "Mr. "]
    generated = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    long = " ".join(AWKWARD * 12)  # word indexes count in blocks of stream characters
    return [*AWKWARD, long, *generated]


@pytest.mark.parametrize("text", _texts())
def test_stream_positions_map_to_the_word_tables(text: str) -> None:
    scan = Scanned.of(text)
    positions = scan._stream_starts
    assert [scan.word_index(at) for at in positions] == list(range(len(scan.keys)))
    for word, at in enumerate(positions):
        assert scan.offset_at(at) == scan.starts[word]
        assert scan.stream_pos_at(scan.starts[word]) == at
        for words in range(1, min(3, len(scan.keys) - word) + 1):
            assert scan.text_span(at, words) == scan.span(word, word + words - 1)
    for compound in scan.compounds():
        assert positions[compound.first] == compound.at
        for word in range(max(0, compound.first - 2), min(len(positions), compound.last + 3)):
            assert scan.locate(word, compound) == positions[word]


def test_compounds_are_their_words() -> None:
    scan = Scanned.of("The pro-Russian build-up, Kyiv's and Luhans'k.")
    joined = ["".join(scan.keys[c.first : c.last + 1]) for c in scan.compounds()]
    assert joined == ["prorussian", "buildup", "luhansk"]
    assert [c for c in scan.compounds(lambda key: key == "buildup")] == [(3, 4, 17)]


def _sentence_ends_by_regex(text: str) -> list[int]:
    ends = [
        m.start("gap") for m in _SENTENCE_END.finditer(text) if not _after_abbreviation(text, m)
    ]
    breaks = [
        m.start() for m in re.finditer("\n", text) if m.start() == 0 or text[m.start() - 1] != "\n"
    ]
    return sorted({*ends, *breaks})


@pytest.mark.parametrize("text", _texts())
def test_sentences_and_paragraphs_as_the_regexes_find_them(text: str) -> None:
    assert sentence_ends(text) == _sentence_ends_by_regex(text)
    assert paragraph_ends(text) == [m.start() for m in re.finditer(r"\s*\n\s*", text)]


def test_sentence_and_paragraph_ends() -> None:
    text = "He said: “Go!” Then?! Mr. Blinken left. U.S. officials agreed…  Fine.\n\n  Next one."
    ends = sentence_ends(text)
    assert [text[:end].rsplit(maxsplit=1)[-1] for end in ends] == [
        "“Go!”",
        "Then?!",
        "left.",
        "agreed…",
        "Fine.",
    ]
    assert paragraph_ends("one\n\n  two \n three\r\nfour") == [3, 10, 18]


@pytest.mark.parametrize("text", _texts())
def test_sentences_and_paragraphs_in_stream_positions(text: str) -> None:
    scan = Scanned.of(text)
    for unit in ("sentence", "paragraph"):
        ends = scan.ends_in_stream(unit)
        for at in scan._stream_starts:
            assert bisect_right(ends, at) == scan.unit_of(unit, scan.offset_at(at))


@pytest.mark.parametrize("text", _texts())
def test_the_scanned_paragraphs_group_words_as_paragraph_ends_does(text: str) -> None:
    """Scanned numbers paragraphs by its sentences' line breaks: between two words there is
    one exactly where there is a paragraph end, so each word is with the same others. (Not a
    word that is only U+3000, which folds to itself but is whitespace: a pattern's words are
    split at whitespace, so no hit starts there.)"""
    scan = Scanned.of(text)
    assert scan.sentence_ends == sentence_ends(scan.text)  # (scan.text is normalised: NFC)
    ends = paragraph_ends(scan.text)
    starts = [at for at, key in zip(scan.starts, scan.keys, strict=True) if not key.isspace()]
    for a, b in zip(starts, starts[1:], strict=False):
        together = bisect_right(ends, a) == bisect_right(ends, b)
        assert (scan.paragraph_of(a) == scan.paragraph_of(b)) == together
