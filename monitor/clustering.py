"""What near-duplicate detection and story grouping need of an article, worked out in the
extractor pool with extraction (pure functions, issue 5).

The store's transaction then only looks things up and compares (monitor.store.clusters): the
shingle hashing, band keys and signature cost a millisecond or so a text, and the database
thread is the pipeline's narrowest stage.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from monitor import fingerprint as fp
from monitor import stories

STORY_KEYS = 8
"""An article's heaviest terms, by which it finds the stories it may join (and they it)."""


@dataclass(frozen=True)
class Options:
    """Which of the two the pipeline does (monitor.yaml `dedupe`), and the actor spellings
    story signatures fold (from actors.yaml, see monitor.stories.spellings)."""

    near_duplicates: bool = True
    stories: bool = True
    actors: Mapping[tuple[str, ...], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Features:
    """An article's near-duplicate fingerprint and its band keys (None: too short to tell), and
    its story signature and keys (None: story grouping is off).

    The signature is kept pickled (`packed`) until the ingest transaction places the article
    (`signature` unpickles it each time it is asked): a signature's terms and labels take ten
    times the text's memory once unpickled (~90 KB for a 1,500-word article), and a
    transaction takes the entries of up to 50 feeds' batches at once; its look-ups need only
    the keys and the published time."""

    fingerprint: fp.Fingerprint | None = None
    bands: tuple[int, ...] = ()
    packed: bytes = b""
    keys: tuple[str, ...] = ()
    published: datetime | None = None  # the signature's (it may be replaced, see published_at)

    @classmethod
    def of(
        cls,
        fingerprint: fp.Fingerprint | None,
        bands: tuple[int, ...],
        signature: stories.Signature | None = None,
        keys: tuple[str, ...] = (),
    ) -> Features:
        if signature is None:
            return cls(fingerprint, bands)
        packed = pickle.dumps(signature, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(fingerprint, bands, packed, keys, signature.published)

    @property
    def signature(self) -> stories.Signature | None:
        if not self.packed:
            return None
        found: stories.Signature = pickle.loads(self.packed)  # noqa: S301 (our own pool's)
        if self.published is None or found.published == self.published:
            return found
        return replace(found, published=self.published)

    def published_at(self, when: datetime) -> Features:
        """The same, with the signature's published time `when` (the stored article's)."""
        if not self.packed or self.published == when:
            return self
        return replace(self, published=when)


def features(text: str, published: datetime, options: Options) -> Features:
    """The features of a stored (boilerplate-free) text published at `published`."""
    sketch = sketch_of(text) if options.near_duplicates else None
    bands = fp.band_keys(sketch) if sketch is not None else ()
    if not options.stories or not text.strip():
        return Features(sketch, bands)
    sig = stories.signature("", text, published, actors=options.actors, fingerprint=sketch)
    return Features.of(sketch, bands, sig, story_keys(sig.terms))


def sketch_of(text: str) -> fp.Fingerprint | None:
    """The fingerprint, after a cheap check that the text has words enough to have one (most
    feed summaries do not: counting spaces costs far less than hashing their shingles)."""
    scheme = fp.DEFAULT
    if text.count(" ") + text.count("\n") + 1 < scheme.min_shingles + scheme.shingle - 1:
        return None
    return fp.fingerprint(text)


def story_keys(terms: Mapping[str, float]) -> tuple[str, ...]:
    """The heaviest terms (names and dates of the lead weigh most), heaviest first."""
    ranked = sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(term for term, _ in ranked[:STORY_KEYS])


def actor_spellings(actors: Mapping[str, Iterable[tuple[str, bool]]]) -> dict[tuple[str, ...], str]:
    """Options.actors from actor key -> (alias text, case sensitive)."""
    return stories.spellings(actors)
