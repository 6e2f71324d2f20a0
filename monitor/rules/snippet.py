"""The snippet shown with a match: the best sentence or two of the text, terms marked.

"Best" is the sentence with the most distinct matched terms (then the most hits, then the
earliest); a short best sentence is followed by the next one. Marks are offsets into the snippet,
so each output format marks them its own way (bold in Slack, <mark> in HTML) after escaping."""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.rules.text import sentence_ends, sentence_spans

MAX_CHARS = 320  # about two sentences of news prose
SHORT_SENTENCE = 120  # a best sentence shorter than this is followed by the next one
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Snippet:
    text: str
    marks: tuple[tuple[int, int], ...]  # (start, end) offsets into `text`, sorted, not overlapping

    def marked(self, before: str = "**", after: str = "**") -> str:
        """The snippet with every mark wrapped (plain text; escape first for markup formats)."""
        out, at = [], 0
        for start, end in self.marks:
            out += [self.text[at:start], before, self.text[start:end], after]
            at = end
        out.append(self.text[at:])
        return "".join(out)


def best_snippet(
    text: str,
    hits: Sequence[tuple[int, int, int]],
    max_chars: int = MAX_CHARS,
    sentences: Sequence[tuple[int, int]] | None = None,
    sentence_of: Callable[[int], int] | None = None,
) -> Snippet:
    """The snippet of `text` for `hits` given as (start, end, term id).

    `sentences` (aligned with `sentence_of`, see `Scanned`) saves splitting the text again when
    one article yields several matches."""
    if sentences is None or sentence_of is None:
        scan_ends = sentence_ends(text)
        sentences = sentence_spans(text, scan_ends)
        sentence_of = functools.partial(bisect_right, scan_ends)
    inside: dict[int, list[int]] = {}
    for start, end, term in hits:
        index = sentence_of(start)
        if end <= sentences[index][1]:
            inside.setdefault(index, []).append(term)
    if inside:
        best = max(inside, key=lambda i: (len(set(inside[i])), len(inside[i]), -i))
    else:
        best = next((i for i, (s, e) in enumerate(sentences) if e > s), -1)
        if best < 0:
            return Snippet("", ())
    start, end = sentences[best]
    following = [span for span in sentences[best + 1 :] if span[1] > span[0]]
    if end - start < SHORT_SENTENCE and following:
        end = following[0][1]
    return _cut(text, start, end, hits, max_chars)


def _cut(
    text: str, start: int, end: int, hits: Sequence[tuple[int, int, int]], max_chars: int
) -> Snippet:
    """text[start:end] cut to `max_chars` around its first hit, with ellipses where cut."""
    inside = sorted((s, e) for s, e, _ in hits if s >= start and e <= end)
    prefix = suffix = ""
    if end - start > max_chars:
        first = inside[0][0] if inside else start
        # keep some words before the first hit, cut at a space
        begin = max(start, first - max_chars // 4)
        if begin > start:
            space = text.find(" ", begin, first)
            begin = space + 1 if space != -1 else begin
            prefix = ELLIPSIS
        stop = min(end, begin + max_chars)
        if stop < end:
            space = text.rfind(" ", begin, stop)
            stop = space if space > begin else stop
            suffix = ELLIPSIS
        start, end = begin, stop
    body = text[start:end]
    offset = len(prefix) - start
    marks = _merge((s + offset, e + offset) for s, e in inside if s >= start and e <= end)
    return Snippet(prefix + body + suffix, marks)


def _merge(spans: object) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):  # type: ignore[call-overload]
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return tuple(merged)
