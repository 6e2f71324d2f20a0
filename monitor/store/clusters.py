"""Near-duplicates and stories inside an ingest transaction (issue 5).

`Copies` answers "is this text a near-duplicate of a stored article?" from the band index
(article_bands, monitor.store.fingerprints), looked up once for a whole group of feeds' entries
and kept current with the articles the transaction inserts. The earliest copy (the lowest id)
is canonical: a later one becomes another source of it (docs/near-duplicates.md).

`Stories` places each new article in a story (monitor.stories.assign): the stories it may join
are those within the window that share one of its keys (its heaviest terms, story_keys), found
for the whole group in one query; the document frequencies come from a count-min sketch of one
row (`Frequencies`). Stories, keys and frequencies changed by the transaction are written when
its rows are sent, before COMMIT. On PostgreSQL the frequencies' row is locked by the first
transaction that places an article, so two workers never grow the same story at once.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from itertools import chain
from operator import itemgetter
from typing import TypeVar
from zlib import crc32

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from monitor.clustering import Features
from monitor.fingerprint import DEFAULT, Fingerprint
from monitor.store.fingerprints import scheme_name
from monitor.store.schema import (
    article_bands,
    article_fingerprints,
    articles,
    stories,
    story_background,
    story_keys,
)
from monitor.store.sql import insert_rows, one_of
from monitor.stories import WINDOW, Background, Signature, Story, assign

MAX_CANDIDATES = 2  # open stories compared with an article: those sharing most of its keys
STORY_TERMS = 100  # a story keeps its heaviest terms: what it is about, at a bounded cost
# and its leads' heaviest terms: one lead has 10 to 30, a story's leads repeat the same names
STORY_LEAD_TERMS = 50
COMMON_KEY = 30  # a key more open stories than this share finds no candidates ("Russia")
# A fresh store's few documents say little about which terms are rare: two articles about one
# event would find each of their shared terms in every document seen, weigh them near zero and
# stay apart (001 and 002 alone score 0.13). So the background counts at least this many
# documents, those not seen yet having none of the terms: idf is nearly flat at first, and the
# real frequencies alone count once there are as many. (Adding them for good kept "United
# States" rare at 50 articles: a lead sharing only it passed the lead test.)
PRIOR_DOCS = 20


class Copies:
    """The transaction's view of the band index: what it asked and what it inserted."""

    def __init__(self, sent: Callable[[], Connection]) -> None:
        self.sent = sent
        self.asked: set[int] = set()
        self.by_band: dict[int, set[int]] = defaultdict(set)
        self.sketch: dict[int, tuple[int | None, Fingerprint]] = {}  # article -> (outlet, fp)
        self._queued: list[tuple[int, Fingerprint, tuple[int, ...]]] = []

    def prefetch(self, features: Iterable[Features]) -> None:
        """Look up, in one statement, the stored articles sharing a band with these texts."""
        keys = list({k for f in features for k in f.bands if k not in self.asked})
        if not keys:
            return
        self.asked.update(keys)
        c, b, f = self.sent(), article_bands.c, article_fingerprints.c
        query = (
            select(b.band_key, b.article_id, articles.c.outlet_id, f.minima, f.shingles)
            .join(article_fingerprints, f.article_id == b.article_id)
            .join(articles, articles.c.id == b.article_id)
            .where(one_of(c, b.band_key, keys), f.scheme == scheme_name())
        )
        for key, article_id, outlet_id, minima, shingles in c.execute(query):
            self.by_band[key].add(article_id)
            if article_id not in self.sketch:
                self.sketch[article_id] = (outlet_id, Fingerprint.from_bytes(minima, shingles))

    def canonical(self, features: Features, outlet_id: int) -> int | None:
        """The earliest stored article of another outlet this text is a near-duplicate of
        (its band keys prefetched).
        Within one outlet two different texts at two addresses are two articles (a wall every
        page shows differs from page to page only a little)."""
        if features.fingerprint is None:
            return None
        candidates = {i for k in features.bands for i in self.by_band.get(k, ())}
        for article_id in sorted(candidates):
            outlet, other = self.sketch[article_id]
            if outlet != outlet_id and DEFAULT.is_near_duplicate(features.fingerprint, other):
                return article_id
        return None

    def inserted(self, article_id: int, outlet_id: int, features: Features) -> None:
        """A new article: its fingerprint is queued and found by later entries at once."""
        if features.fingerprint is None:
            return
        self.sketch[article_id] = (outlet_id, features.fingerprint)
        for key in features.bands:
            self.by_band[key].add(article_id)
        self._queued.append((article_id, features.fingerprint, features.bands))

    def revised(self, article_id: int, outlet_id: int, features: Features) -> None:
        """The article's text changed: its old fingerprint goes, the new one (if any) comes."""
        self.flush()
        c = self.sent()
        c.execute(delete(article_bands).where(article_bands.c.article_id == article_id))
        c.execute(
            delete(article_fingerprints).where(article_fingerprints.c.article_id == article_id)
        )
        self.sketch.pop(article_id, None)
        self.inserted(article_id, outlet_id, features)

    def flush(self) -> None:
        """Insert the queued fingerprints (after their articles: call once those are sent)."""
        if not self._queued:
            return
        c, name = self.sent(), scheme_name()
        fingerprints = [
            {"article_id": i, "scheme": name, "minima": f.to_bytes(), "shingles": f.shingles}
            for i, f, _ in self._queued
        ]
        bands = [{"band_key": k, "article_id": i} for i, _, keys in self._queued for k in keys]
        self._queued.clear()
        insert_rows(c, article_fingerprints, fingerprints)
        insert_rows(c, article_bands, bands)


_SEEDS = (0x9E3779B9, 0x85EBCA6B)  # one per row of the sketch


class Frequencies(Mapping[str, int]):
    """Document frequencies of terms as a count-min sketch: DEPTH rows of WIDTH counters, a
    term counted in one counter of each row, its frequency the least of them (never too low,
    too high only where every row collides). A fixed megabyte however many terms news brings,
    read and written as one row: a table of terms cost an upsert per term and article."""

    WIDTH = 1 << 17
    DEPTH = 2  # rows (_slots has one line for each)

    def __init__(self, docs: int = 0, counts: bytes | None = None) -> None:
        self.docs = docs
        self.counts = array("I")
        if counts is not None and len(counts) == 4 * self.WIDTH * self.DEPTH:
            self.counts.frombytes(counts)
        else:
            self.counts.frombytes(bytes(4 * self.WIDTH * self.DEPTH))
            self.docs = 0
        self._memo: dict[str, int] = {}  # the sketch's answer, pending counts aside
        self._slot_memo: dict[str, tuple[int, int]] = {}
        self._pending: Counter[str] = Counter()  # counted since the sketch was written

    def _slots(self, term: str) -> tuple[int, int]:
        """The term's counter in each of the two rows (CRC-32 under a seed a row: cheap,
        stable across processes); two rows written out, as this runs for every term of
        every article placed."""
        slots = self._slot_memo.get(term)
        if slots is None:
            data, width = term.encode(), self.WIDTH
            slots = self._slot_memo[term] = (
                crc32(data, _SEEDS[0]) % width,
                width + crc32(data, _SEEDS[1]) % width,
            )
        return slots

    def add(self, terms: Iterable[str]) -> None:
        """Count one more document with these (distinct) terms. They are counted in a
        Counter (in C) and go into the sketch when it is written (`to_bytes`): a term's
        counters are then added to once a transaction, not once an article."""
        self.docs += 1
        self._pending.update(iter(terms))  # iter: a mapping's keys, not its values

    def __getitem__(self, term: str) -> int:
        found = self._memo.get(term)
        if found is None:
            a, b = self._slots(term)
            found = self._memo[term] = min(self.counts[a], self.counts[b])
        return found + self._pending.get(term, 0)

    def get(self, term: str, default: int | None = 0) -> int:  # type: ignore[override]
        return self[term]

    def __iter__(self) -> Iterator[str]:
        return iter(())  # a sketch does not know its terms

    def __len__(self) -> int:
        return 0

    def to_bytes(self) -> bytes:
        counts, slots_of = self.counts, self._slots
        for term, n in self._pending.items():
            a, b = slots_of(term)
            counts[a] += n
            counts[b] += n
        self._pending.clear()
        self._memo.clear()
        return counts.tobytes()


class _Background(Background):
    """Background.idf with the logarithm of each term's frequency looked up, not taken again:
    similarity asks it of every term of the article and of each candidate story. The norms of
    the stories' vectors are kept for the transaction (see `norm`)."""

    _log_docs: float
    _log_df: Mapping[str, float]
    _norms: dict[int, float]

    def __init__(
        self,
        docs: int,
        df: Mapping[str, int],
        log_df: Mapping[str, float],
        norms: dict[int, float],
    ) -> None:
        super().__init__(docs, df)
        object.__setattr__(self, "_log_docs", math.log(docs + 1))
        object.__setattr__(self, "_log_df", log_df)
        object.__setattr__(self, "_norms", norms)

    def idf(self, term: str) -> float:
        log_df = self._log_df.get(term)
        if log_df is None:
            return super().idf(term)
        return float(self._log_docs - log_df)

    def idfs(self, terms: Iterable[str]) -> dict[str, float]:
        log_docs, log_df = self._log_docs, self._log_df
        try:
            return {t: log_docs - log_df[t] for t in terms}
        except KeyError:
            return super().idfs(terms)

    def norm(self, terms: Mapping[str, float]) -> float:
        """A story's norm as first worked out in the transaction, until the story changes
        (Stories.place forgets it then): most of placing's time was this, a candidate's 100 to
        200 terms for each article. Each article placed since moves the document frequencies
        a little (one document in thousands); the dot product uses the current ones."""
        known = self._norms.get(id(terms))
        if known is None:
            known = self._norms[id(terms)] = self._norm(terms)
        return known

    def norm_grown(
        self, norm: float, terms: Mapping[str, float], added: Mapping[str, float]
    ) -> float:
        """The norm of `terms` with `added` summed in, from `norm`, that of `terms`: only the
        added terms' weights change."""
        idf, square, weight = self.idfs(added), norm * norm, terms.get
        for t, w in added.items():
            before = weight(t, 0.0)
            square += (2.0 * before + w) * w * idf[t] ** 2  # (before + w)² - before²
        return math.sqrt(max(square, 0.0))

    def _norm(self, terms: Mapping[str, float]) -> float:
        log_docs, log_df = self._log_docs, self._log_df
        try:
            return math.hypot(*[w * (log_docs - log_df[t]) for t, w in terms.items()])
        except KeyError:
            return super().norm(terms)


@dataclass
class _Held:
    """A story as the transaction holds it."""

    story: Story
    keys: set[str]
    articles: int
    new: bool = False
    changed: bool = False
    new_keys: tuple[str, ...] = ()
    known: bool = False  # its terms' frequencies are looked up (Stories.df)


class Stories:
    """The transaction's stories: those its entries' keys found, and those it started."""

    def __init__(self, sent: Callable[[], Connection]) -> None:
        self.sent = sent
        self.asked: set[str] = set()
        self.by_key: dict[str, set[int]] = defaultdict(set)
        self.common: set[str] = set()  # keys too many stored open stories share
        self.spans: dict[int, tuple[datetime, datetime]] = {}  # stored story -> first, last
        self.held: dict[int, _Held] = {}
        self.frequencies: Frequencies | None = None
        # the frequencies looked up so far, as a plain dict: similarity asks one per term
        self.df: dict[str, int] = {}
        self.log_df: dict[str, float] = {}  # log(df + 0.5), what idf subtracts
        # the norms of the held stories' term vectors, by id() of their terms (see _Background)
        self.norms: dict[int, float] = {}
        self._frequencies_stored = False
        self._changed = False

    def prefetch(self, articles: Sequence[tuple[datetime, tuple[str, ...]]]) -> None:
        """Look up, in one statement, the stored stories within the window that share a key
        with these articles (their published time and keys), and read, in another, those that
        can be an article's candidate."""
        self._load_frequencies()
        keys = list({k for _, ks in articles for k in ks if k not in self.asked})
        if keys:
            self._read_holders(keys, articles)
        self._read_candidates(articles)

    def _read_holders(
        self, keys: list[str], articles: Sequence[tuple[datetime, tuple[str, ...]]]
    ) -> None:
        self.asked.update(keys)
        earliest = min(published for published, _ in articles) - WINDOW
        latest = max(published for published, _ in articles) + WINDOW
        c, s, k = self.sent(), stories.c, story_keys.c
        sharing = (
            select(k.key, k.story_id, s.first_at, s.last_at)
            .join(stories, s.id == k.story_id)
            .where(one_of(c, k.key, keys), s.last_at >= earliest, s.first_at <= latest)
        )
        holders: dict[str, list[int]] = defaultdict(list)
        for key, story_id, first, last in c.execute(sharing):
            holders[key].append(story_id)
            self.spans[story_id] = (first, last)
        for key, ids in holders.items():
            if len(ids) > COMMON_KEY:  # finds no candidates (see place): its stories not read
                self.common.add(key)
                continue
            self.by_key[key].update(ids)

    def _read_candidates(self, articles: Sequence[tuple[datetime, tuple[str, ...]]]) -> None:
        """Read the stored stories that rank among an article's MAX_CANDIDATES (as
        `_candidates` ranks them), each story's JSON once. Only those: a stored story ranked
        lower can only fall further behind before the article is placed (only held stories
        gain keys), and a large store has thousands sharing some key with a group's articles."""
        wanted = {i for published, keys in articles for i in self._ranked(published, keys)}
        missing = [i for i in wanted if i not in self.held]
        if missing:
            c, s = self.sent(), stories.c
            columns = [s.id, s.first_at, s.last_at, s.articles, s.terms, s.labels, s.days]
            columns.append(s.lead_terms)
            for row in c.execute(select(*columns, s["keys"]).where(one_of(c, s.id, missing))):
                self.held[row.id] = _Held(_story(row), set(row._mapping["keys"]), row.articles)

    def place(
        self, article_id: int, signature: Signature, keys: tuple[str, ...]
    ) -> tuple[int, str]:
        """The story the new article joins (or starts, with the article's id), and why. The
        article's keys must have been prefetched (a query here would send the articles the
        transaction holds back one by one)."""
        assert self.frequencies is not None
        self.frequencies.add(signature.terms)
        self._changed = True
        df, log_df = self.df, self.log_df
        for term in signature.terms:  # one more document has it (every counter of it grew)
            if term in df:
                df[term] += 1
                log_df[term] = math.log(df[term] + 0.5)
        candidates = self._candidates(signature, keys)
        for held in candidates:  # the article's lead terms are among its terms
            if not held.known:
                self._know(held.story.terms)
                self._know(held.story.lead_terms)
                held.known = True
        self._know(signature.terms)
        docs = max(self.frequencies.docs, PRIOR_DOCS)
        background = _Background(docs, df, log_df, self.norms)
        # a near-duplicate never gets here (it is a source of its canonical copy), and the
        # stories keep no members: no fingerprint to compare with
        decision = assign(signature, [held.story for held in candidates], background)
        if decision.story is None:
            story_id = article_id
            story = Story.start(str(article_id), signature, keep_member=False)
            held = self.held[story_id] = _Held(story, set(), 0, known=True)
            held.new = True
        else:
            story_id = int(decision.story.id)
            held = self.held[story_id]
            held.story = self._grown(held.story, signature, background)
            # known still: its new terms are the article's, looked up above
        held.articles += 1
        held.changed = True
        fresh = tuple(k for k in keys if k not in held.keys)
        held.keys.update(fresh)
        held.new_keys += fresh
        for key in keys:
            self.by_key[key].add(story_id)
        return story_id, decision.explain()

    def _candidates(self, signature: Signature, keys: tuple[str, ...]) -> list[_Held]:
        """The open stories sharing most of the article's keys (at most MAX_CANDIDATES). A
        story prefetch did not read is passed over: it ranked lower then, and could only
        come level when a key turned common meanwhile."""
        return [self.held[i] for i in self._ranked(signature.published, keys, held_only=True)]

    def _ranked(
        self, published: datetime, keys: tuple[str, ...], held_only: bool = False
    ) -> list[int]:
        """The ids of the MAX_CANDIDATES open stories sharing most of these keys, most first
        (then the latest story)."""
        by_key, common, held, spans = self.by_key, self.common, self.held, self.spans
        shared = Counter(  # counted in C: an article's keys are held by a score of stories
            chain.from_iterable(
                holders
                for key in keys
                # a key too many stories hold says little and costs a lot
                if key not in common and len(holders := by_key.get(key, ())) <= COMMON_KEY
            )
        )
        found: list[int] = []
        for story_id, _ in sorted(shared.items(), key=itemgetter(1, 0), reverse=True):
            if story_id in held:
                is_open = held[story_id].story.open_at(published)
            elif held_only:
                continue
            else:
                first, last = spans[story_id]
                is_open = first - WINDOW <= published <= last + WINDOW
            if is_open:
                found.append(story_id)
                if len(found) == MAX_CANDIDATES:
                    break
        return found

    def _grown(self, story: Story, article: Signature, background: _Background) -> Story:
        """The story with the article added. Its dicts are grown in place: the transaction
        owns them (read from their JSON, or started here), and copying a story's hundreds of
        terms and labels for each article that joins it cost more than comparing with it.
        Its norms are carried over, updated for the article's terms only (not summed again
        over the story's); a dict `_bounded` replaces loses its entry, as another dict may
        take its id()."""
        norms = self.norms
        for terms, added in ((story.terms, article.terms), (story.lead_terms, article.lead_terms)):
            norm = norms.get(id(terms))
            if norm is not None:
                norms[id(terms)] = background.norm_grown(norm, terms, added)
            _add_into(_owned(terms), added)
        labels = _owned(story.labels)
        for term, label in article.labels.items():
            labels.setdefault(term, label)
        days = story.days | {article.lead_day} if article.lead_day else story.days
        first, last = min(story.first, article.published), max(story.last, article.published)
        grown = replace(story, days=days, first=first, last=last)
        bounded = _bounded(grown)
        for before, after in ((grown.terms, bounded.terms), (grown.lead_terms, bounded.lead_terms)):
            if after is not before:
                norms.pop(id(before), None)
        return bounded

    def _know(self, terms: Iterable[str]) -> None:
        assert self.frequencies is not None
        df, log_df, sketch = self.df, self.log_df, self.frequencies
        for term in terms:
            if term not in df:
                df[term] = sketch[term]
                log_df[term] = math.log(df[term] + 0.5)

    def flush(self, now: datetime) -> None:
        """Write the stories, keys and frequencies the transaction changed."""
        if not self._changed:
            return
        self._changed = False
        c = self.sent()
        new = [(i, h) for i, h in self.held.items() if h.changed and h.new]
        grown = [(i, h) for i, h in self.held.items() if h.changed and not h.new]
        if new:  # few rows, with JSON: the ordinary executemany
            c.execute(insert(stories), [_story_row(i, h, now) for i, h in new])
        if grown:
            c.execute(_UPDATE_STORY, [_story_row(i, h, now, prefix="v_") for i, h in grown])
        keys = [{"key": k, "story_id": i} for i, h in self.held.items() for k in h.new_keys]
        if keys:
            insert_rows(c, story_keys, keys)
        for _, h in [*new, *grown]:
            h.new = h.changed = False
            h.new_keys = ()
        self._store_frequencies(c)

    # -- the frequencies' row -----------------------------------------------------------------

    def _load_frequencies(self) -> None:
        if self.frequencies is not None:
            return
        c = self.sent()
        query = select(story_background.c.docs, story_background.c.counts).where(
            story_background.c.id == 1
        )
        if c.dialect.name == "postgresql":
            query = query.with_for_update()  # one placing transaction at a time (see above)
        row = c.execute(query).first()
        self._frequencies_stored = row is not None
        self.frequencies = Frequencies(row.docs, row.counts) if row else Frequencies()

    def _store_frequencies(self, c: Connection) -> None:
        assert self.frequencies is not None
        values = {"docs": self.frequencies.docs, "counts": self.frequencies.to_bytes()}
        if self._frequencies_stored:
            c.execute(update(story_background).where(story_background.c.id == 1).values(values))
        else:
            c.execute(insert(story_background).values(id=1, **values))
            self._frequencies_stored = True


def _story(row: object) -> Story:
    """A stored story as monitor.stories compares it (its members' signatures are not kept)."""
    r: dict[str, object] = row._mapping  # type: ignore[attr-defined]
    terms, labels, lead_terms, days = r["terms"], r["labels"], r["lead_terms"], r["days"]
    assert isinstance(terms, dict) and isinstance(labels, dict) and isinstance(days, list)
    assert isinstance(lead_terms, dict)
    first, last = r["first_at"], r["last_at"]
    assert isinstance(first, datetime) and isinstance(last, datetime)
    return Story(
        str(r["id"]),
        (),
        terms,
        labels,
        frozenset(date.fromisoformat(d) for d in days),
        first,
        last,
        lead_terms,
    )


_COLUMNS = (
    "first_at",
    "last_at",
    "articles",
    "terms",
    "labels",
    "lead_terms",
    "days",
    "keys",
    "updated_at",
)
_UPDATE_STORY = (
    update(stories)
    .where(stories.c.id == bindparam("v_id"))
    .values({col: bindparam(f"v_{col}") for col in _COLUMNS})
)


V = TypeVar("V")


def _owned(m: Mapping[str, V]) -> dict[str, V]:
    """A held story's dict, which the transaction may grow (see Stories._grown)."""
    assert isinstance(m, dict)
    return m


def _add_into(terms: dict[str, float], added: Mapping[str, float]) -> None:
    get = terms.get
    for term, w in added.items():
        terms[term] = get(term, 0.0) + w


def _bounded(story: Story) -> Story:
    """The story with its heaviest STORY_TERMS terms and STORY_LEAD_TERMS lead terms, once it
    has twice as many (a story compared with every article that may join it must not grow
    without bound)."""
    if len(story.terms) > 2 * STORY_TERMS:
        story = replace(story, terms=dict(_heaviest(story.terms)))
    if len(story.lead_terms) > 2 * STORY_LEAD_TERMS:
        story = replace(story, lead_terms=dict(_heaviest(story.lead_terms, STORY_LEAD_TERMS)))
    if len(story.labels) > 2 * (len(story.terms) + len(story.lead_terms)):
        # every article that joins adds its terms' labels; only the kept terms' are shown
        kept = {t: story.labels[t] for t in (*story.terms, *story.lead_terms) if t in story.labels}
        story = replace(story, labels=kept)
    return story


def _heaviest(terms: Mapping[str, float], n: int = STORY_TERMS) -> list[tuple[str, float]]:
    return sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _story_row(story_id: int, held: _Held, now: datetime, prefix: str = "") -> dict[str, object]:
    story = held.story
    terms = {t: round(w, 4) for t, w in _heaviest(story.terms)}
    lead = {t: round(w, 4) for t, w in _heaviest(story.lead_terms, STORY_LEAD_TERMS)}
    row = {
        "id": story_id,
        "first_at": story.first,
        "last_at": story.last,
        "articles": held.articles,
        "terms": terms,
        "labels": {t: story.labels[t] for t in [*terms, *lead] if t in story.labels},
        "lead_terms": lead,
        "days": sorted(d.isoformat() for d in story.days),
        "keys": sorted(held.keys),
        "updated_at": now,
    }
    return {prefix + k: v for k, v in row.items()}
