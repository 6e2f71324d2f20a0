"""The fingerprint stage: a near-duplicate sketch of an article's stored text (pure functions).

A fingerprint is a MinHash sketch of the text's word shingles, made by one-permutation hashing
(each shingle hashed once, the hash's top bits pick one of ``bins`` bins, each bin keeps its
smallest value; Li, Owen & Zhang 2012) with optimal densification for empty bins (Shrivastava
2017). Two texts' sketches agree in a bin with probability equal to the Jaccard similarity of
their shingle sets, so the share of equal bins estimates it. This costs one hash a shingle
instead of one per shingle and permutation (a 1,000-word article is about a millisecond), and
needs no numpy: the daemon's memory budget has no room for it.

The store indexes ``band_keys``: the bins cut into bands of ``rows`` bins, each band hashed to
one signed 64-bit key. Two texts with Jaccard J share at least one key with probability
1 - (1 - J^rows)^bands, so a lookup is an index probe per band, not a scan. Candidates that
share a key are then verified by ``is_near_duplicate``.

Texts with fewer than ``min_shingles`` shingles get no fingerprint: two short stubs from one
template ("X met Y in Z on D. This is a developing story.") differ in a few words only, and a
few dozen words are too little evidence to tell a copy from a template. Such texts are
deduplicated by URL, GUID and exact hash only.

Parameters were chosen by measurement on the labelled set in tests/neardup (see
docs/near-duplicates.md and ``python -m tests.neardup.evaluate``).
"""

from __future__ import annotations

import random
import re
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from hashlib import blake2b

from monitor.extract import normalise_text

_WORDS = re.compile(r"\w+")
_MASK32 = 0xFFFFFFFF
_U32 = next(code for code in "IL" if array(code).itemsize == 4)  # array typecode of a uint32


@dataclass(frozen=True)
class Fingerprint:
    """A text's sketch: the minimum of each bin, and how many distinct shingles it had.

    The minima are kept in an array of 32-bit values (512 bytes), not a tuple of ints (4.6 KB):
    an ingest transaction holds the fingerprint of every stored article sharing a band with
    its entries, thousands of them once a store is large."""

    minima: Sequence[int]  # one unsigned 32-bit value a bin (an array('I') once made)
    shingles: int

    def __post_init__(self) -> None:
        if not isinstance(self.minima, array):
            object.__setattr__(self, "minima", array(_U32, self.minima))

    __hash__ = None  # type: ignore[assignment]  # an array is not hashable

    def to_bytes(self) -> bytes:
        """The minima as stored (little-endian uint32 each)."""
        return struct.pack(f"<{len(self.minima)}I", *self.minima)

    @classmethod
    def from_bytes(cls, data: bytes, shingles: int) -> Fingerprint:
        minima = array(_U32)
        minima.frombytes(data)
        if sys.byteorder == "big":  # stored little-endian
            minima.byteswap()
        return cls(minima, shingles)


@dataclass(frozen=True)
class Scheme:
    """One configuration of the fingerprint: shingle size, sketch size, bands, decision."""

    shingle: int = 3  # words a shingle
    bins: int = 128  # a power of two
    rows: int = 2  # bins a band
    bands: int = 20  # bands indexed (bands * rows <= bins)
    min_shingles: int = 50  # fewer: no fingerprint (see the module docstring)
    threshold: float = 0.32  # estimated Jaccard at or above which two texts are near-duplicates
    salt: bytes = b""  # keys the shingle hash; only the evaluation varies it (estimator noise)

    def __post_init__(self) -> None:
        if self.bins & (self.bins - 1) or not 1 <= self.bands * self.rows <= self.bins:
            raise ValueError(f"bad scheme {self!r}")

    def words(self, text: str) -> list[str]:
        """The words a text is compared by: normalised as for exact duplicates, no punctuation."""
        return _WORDS.findall(normalise_text(text))

    def shingle_hashes(self, text: str) -> set[int]:
        """64-bit hashes of the text's distinct word shingles (the whole text if shorter)."""
        words = self.words(text)
        n = self.shingle
        grams = {" ".join(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}
        grams.discard("")
        salt = self.salt
        return {
            int.from_bytes(blake2b(g.encode(), digest_size=8, key=salt).digest(), "little")
            for g in grams
        }

    def fingerprint(self, text: str) -> Fingerprint | None:
        """The text's sketch, or None when it is too short to fingerprint."""
        hashes = self.shingle_hashes(text)
        if len(hashes) < self.min_shingles:
            return None
        return Fingerprint(self.sketch(hashes), len(hashes))

    def sketch(self, hashes: set[int]) -> tuple[int, ...]:
        """One-permutation MinHash of a set of 64-bit hashes, densified."""
        shift = 64 - (self.bins.bit_length() - 1)
        empty = _MASK32 + 1
        minima = [empty] * self.bins
        for h in hashes:
            b, v = h >> shift, h & _MASK32
            if v < minima[b]:
                minima[b] = v
        for b, v in enumerate(minima):
            if v == empty:  # borrow from the first non-empty bin of this bin's own sequence
                minima[b] = next(minima[d] for d in self._donors[b] if minima[d] != empty)
        return tuple(minima)

    @cached_property
    def _donors(self) -> tuple[tuple[int, ...], ...]:
        # a fixed pseudo-random probe sequence per bin, ending in every bin so one is non-empty
        out = []
        for b in range(self.bins):
            rng = random.Random(f"monitor.fingerprint/{self.bins}/{b}")
            probe = [rng.randrange(self.bins) for _ in range(4 * self.bins)]
            out.append(tuple(probe + list(range(self.bins))))
        return tuple(out)

    def band_keys(self, fp: Fingerprint) -> tuple[int, ...]:
        """The index keys of a fingerprint: one signed 64-bit integer a band."""
        keys = []
        r = self.rows
        for band in range(self.bands):
            data = struct.pack(f"<H{r}I", band, *fp.minima[band * r : band * r + r])
            keys.append(
                int.from_bytes(blake2b(data, digest_size=8).digest(), "little", signed=True)
            )
        return tuple(keys)

    def similarity(self, a: Fingerprint, b: Fingerprint) -> float:
        """Estimated Jaccard similarity of the two texts' shingle sets."""
        if len(a.minima) != len(b.minima):
            raise ValueError("fingerprints of different sizes")
        return sum(x == y for x, y in zip(a.minima, b.minima, strict=True)) / len(a.minima)

    def is_near_duplicate(self, a: Fingerprint, b: Fingerprint) -> bool:
        """The verification after a band matched: estimated Jaccard at or above the threshold."""
        return self.similarity(a, b) >= self.threshold


DEFAULT = Scheme()
"""The scheme the store indexes. Changing it invalidates stored band keys (re-fingerprint)."""


def fingerprint(text: str) -> Fingerprint | None:
    """The near-duplicate fingerprint of a stored text (None when too short to tell)."""
    return DEFAULT.fingerprint(text)


def band_keys(fp: Fingerprint) -> tuple[int, ...]:
    """The LSH index keys of a fingerprint."""
    return DEFAULT.band_keys(fp)


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated Jaccard similarity of two fingerprinted texts."""
    return DEFAULT.similarity(a, b)


def is_near_duplicate(a: Fingerprint, b: Fingerprint) -> bool:
    """Whether two fingerprinted texts are copies of one article."""
    return DEFAULT.is_near_duplicate(a, b)
