"""Fingerprint schemes compared on the labelled set: the one the store uses and the alternatives.

Each scheme turns a text into a fingerprint (or None: too short), a fingerprint into index keys
(a pair is a candidate when they share one), and two fingerprints into a score that the
threshold decides on. Only the scheme in ``monitor.fingerprint`` is used by the monitor; the
others are here to be measured against it.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.fingerprint import Fingerprint, Scheme

_P61 = (1 << 61) - 1
_MASK32 = 0xFFFFFFFF


class Candidate(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def threshold(self) -> float: ...

    def fingerprint(self, text: str) -> Any | None: ...
    def keys(self, fp: Any) -> tuple[Hashable, ...]: ...
    def score(self, a: Any, b: Any) -> float: ...
    def bytes_stored(self) -> int: ...


@dataclass
class OnePermutation:
    """The monitor's scheme (monitor.fingerprint.Scheme) under a name."""

    scheme: Scheme
    name: str = ""

    def __post_init__(self) -> None:
        s = self.scheme
        self.name = self.name or (
            f"MinHash-OPH k={s.shingle} bins={s.bins} bands={s.bands}x{s.rows}"
        )

    @property
    def threshold(self) -> float:
        return self.scheme.threshold

    def fingerprint(self, text: str) -> Fingerprint | None:
        return self.scheme.fingerprint(text)

    def keys(self, fp: Fingerprint) -> tuple[int, ...]:
        return self.scheme.band_keys(fp)

    def score(self, a: Fingerprint, b: Fingerprint) -> float:
        return self.scheme.similarity(a, b)

    def bytes_stored(self) -> int:
        return 4 * self.scheme.bins + 8 * self.scheme.bands


@dataclass
class KPermutation:
    """Classic MinHash: `perms` universal hash functions, each keeping its minimum (as datasketch
    does, in pure Python here)."""

    shingle: int = 3
    perms: int = 128
    rows: int = 2
    bands: int = 16
    threshold: float = 0.3
    min_shingles: int = 50
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or (
            f"MinHash-kperm k={self.shingle} perms={self.perms} bands={self.bands}x{self.rows}"
        )
        rng = random.Random("kperm")
        self._ab = [(rng.randrange(1, _P61), rng.randrange(_P61)) for _ in range(self.perms)]
        self._words = Scheme(shingle=self.shingle, min_shingles=1)

    def fingerprint(self, text: str) -> tuple[int, ...] | None:
        hashes = [h & _P61 for h in self._words.shingle_hashes(text)]
        if len(hashes) < self.min_shingles:
            return None
        return tuple(min((a * h + b) % _P61 for h in hashes) & _MASK32 for a, b in self._ab)

    def keys(self, fp: tuple[int, ...]) -> tuple[Hashable, ...]:
        r = self.rows
        return tuple((band, fp[band * r : band * r + r]) for band in range(self.bands))

    def score(self, a: tuple[int, ...], b: tuple[int, ...]) -> float:
        return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)

    def bytes_stored(self) -> int:
        return 4 * self.perms + 8 * self.bands


@dataclass
class SimHash:
    """Charikar's SimHash over word shingles (64 bits); indexed by `blocks` bit blocks, so two
    fingerprints within blocks - 1 bits of each other always share a block (pigeonhole)."""

    shingle: int = 3
    blocks: int = 4
    threshold: float = 0.85  # 1 - Hamming distance / 64
    min_shingles: int = 50
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"SimHash-64 k={self.shingle} blocks={self.blocks}"
        self._words = Scheme(shingle=self.shingle, min_shingles=1)

    def fingerprint(self, text: str) -> int | None:
        hashes = self._words.shingle_hashes(text)
        if len(hashes) < self.min_shingles:
            return None
        half = len(hashes) / 2
        out = 0
        for bit in range(64):
            if sum((h >> bit) & 1 for h in hashes) > half:
                out |= 1 << bit
        return out

    def keys(self, fp: int) -> tuple[Hashable, ...]:
        width = 64 // self.blocks
        return tuple((i, (fp >> (i * width)) & ((1 << width) - 1)) for i in range(self.blocks))

    def score(self, a: int, b: int) -> float:
        return 1 - (a ^ b).bit_count() / 64

    def bytes_stored(self) -> int:
        return 8 + 8 * self.blocks
