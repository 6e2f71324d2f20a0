"""Sentences and paragraphs: the quick scans the matcher uses must agree with the plain
definitions by regex."""

from __future__ import annotations

import random
import re

import pytest

from monitor.rules.text import (
    _SENTENCE_END,
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
    return AWKWARD + generated


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
