"""Story grouping as ingest does it, scored on the labelled set.

    .venv/bin/python -m tests.neardup.in_store

`python -m tests.neardup.evaluate` scores the pure module (monitor.stories.group: every open
story a candidate, exact document frequencies). Ingest differs (monitor.store.clusters): a
near-duplicate of another outlet's stored text is a source of that article, so in its story, and
is never placed; an article is compared only with the few open stories that share most of its
keys, a story keeps its heaviest terms and lead terms, document frequencies come from a
count-min sketch with a prior, and stories are stored and read back between articles. This runs
the labelled texts through that code (`Copies.canonical`, then `Stories.place`), each text from
an outlet of its own, on a SQLite store, one transaction an article in published order, and
prints the same pairwise precision and recall next to the pure module's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from monitor import stories
from monitor.clustering import Features, story_keys
from monitor.fingerprint import band_keys
from monitor.store import Store
from monitor.store.clusters import Copies, Stories
from tests.neardup import cases
from tests.neardup.evaluate import story_signatures


def placed_in_store(url: str, together: bool = False) -> dict[str, str]:
    """Text id -> story id, each text placed in its own transaction (`together`: all in one,
    as a cold cycle stores hundreds of articles a transaction, where a story's norm is kept
    from when it was first compared), oldest first (a near-duplicate of an earlier text in that
    text's story, as ingest makes it a source)."""
    store = Store.open(url)
    placed: dict[str, str] = {}
    story_of: dict[int, int] = {}  # article (the text's number) -> its story
    # the band index as the transactions would read it back (fingerprints are not stored here:
    # nothing is prefetched, every text is kept as inserted)
    copies = Copies(lambda: store.engine.connect())
    shared = store.engine.connect() if together else None
    one = Stories(lambda: shared) if shared is not None else None
    try:
        ordered = sorted(story_signatures(), key=lambda s: (s.published, s.id))
        for n, sig in enumerate(ordered, start=1):
            keys = story_keys(sig.terms)
            bands = band_keys(sig.fingerprint) if sig.fingerprint is not None else ()
            features = Features.of(sig.fingerprint, bands, sig, keys)
            copy_of = copies.canonical(features, outlet_id=n)
            if copy_of is not None:
                story_of[n] = story_of[copy_of]
            else:
                copies.inserted(n, n, features)
                if one is not None:
                    one.prefetch([(sig.published, keys)])
                    story_of[n], _ = one.place(n, sig, keys)
                else:
                    with store.engine.begin() as c:
                        held = Stories(lambda c=c: c)
                        held.prefetch([(sig.published, keys)])
                        story_of[n], _ = held.place(n, sig, keys)
                        held.flush(sig.published)
            placed[sig.id] = str(story_of[n])
    finally:
        if shared is not None:
            shared.close()
        store.close()
    return placed


def pairwise(placed: dict[str, str]) -> tuple[float, float]:
    tp = fp = fn = 0
    for pair in cases.pairs():
        same = placed[pair.a.id] == placed[pair.b.id]
        tp += same and pair.same_story
        fp += same and not pair.same_story
        fn += not same and pair.same_story
    return tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0


def main() -> None:
    pure = pairwise(stories.group(story_signatures())[0])
    with tempfile.TemporaryDirectory() as tmp:
        stored = pairwise(placed_in_store(f"sqlite:///{Path(tmp) / 'stories.db'}"))
        together = pairwise(placed_in_store(f"sqlite:///{Path(tmp) / 'one.db'}", together=True))
    print(f"pure module (stories.group):   precision {pure[0]:.3f}, recall {pure[1]:.3f}")
    print(f"as ingest does it (SQLite):    precision {stored[0]:.3f}, recall {stored[1]:.3f}")
    print(f"  all in one transaction:      precision {together[0]:.3f}, recall {together[1]:.3f}")


if __name__ == "__main__":
    main()
