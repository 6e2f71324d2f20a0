"""Fuzzing text normalisation: folding keeps offsets, and a scanned text's words, stream and
offsets agree for any string (the matcher and the snippets rely on it)."""

from __future__ import annotations

from hypothesis import example, given

from monitor.extract import normalise_text
from monitor.rules.text import Scanned, fold, paragraph_ends, sentence_spans
from tests.fuzz.strategies import hostile_text

TEXT = hostile_text(12)


@given(TEXT)
@example("İstanbul")  # lower-cases to two characters
@example("e\u0301")
@example("ﬁ")
def test_folding_keeps_the_length_so_offsets_stay_valid(text: str) -> None:
    assert len(fold(text)) == len(text)
    assert len(fold(text, lower=False)) == len(text)


@given(TEXT)
@example("  Zelenskyy’s   build-up\n\nU.S.  ")
@example("a\u3000b")
def test_every_word_of_a_scanned_text_maps_to_its_offset_and_back(text: str) -> None:
    scanned = Scanned.of(text)
    starts = scanned.starts
    assert len(starts) == len(scanned.keys)
    for index, (key, start) in enumerate(zip(scanned.keys, starts, strict=True)):
        assert scanned.folded[start : start + len(key)] == key
        stream_pos = scanned.stream_pos_at(start)
        assert scanned.stream[stream_pos : stream_pos + len(key) + 1] == key + " "
        assert scanned.offset_at(stream_pos) == start
        assert scanned.word_index(stream_pos) == index


@given(TEXT)
def test_sentences_and_paragraphs_lie_inside_the_text_in_order(text: str) -> None:
    spans = sentence_spans(text)
    assert all(0 <= a <= b <= len(text) for a, b in spans)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
    ends = paragraph_ends(text)
    assert ends == sorted(set(ends)) and all(0 <= e <= len(text) for e in ends)


@given(TEXT)
def test_the_exact_duplicate_key_is_idempotent(text: str) -> None:
    once = normalise_text(text)
    assert normalise_text(once) == once
