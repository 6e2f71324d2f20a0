"""The compiled matcher: every spelling of an actor in the corpus is found, look-alikes are not;
normalisation, inflection, proximity, fields, weights, filters, snippets; cost follows the hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.rules.compiler import RuleCompileError, compile_rules
from monitor.rules.matcher import Document, candidates, find, match
from monitor.rules.query import parse_query
from monitor.rules.spec import ActorSpec, Alias, Filters, RuleSet, WatchSpec

CORPUS = Path(__file__).parent.parent / "monitor" / "demo" / "corpus"


def corpus(number: str) -> str:
    (path,) = CORPUS.glob(f"{number}_*.txt")
    return path.read_text()


def actor(name: str, *aliases: str | Alias) -> ActorSpec:
    return ActorSpec(name, tuple(a if isinstance(a, Alias) else Alias(a) for a in aliases))


ACTORS = {
    a.name: a
    for a in [
        actor("putin", "Putin", "Vladimir Putin", "Путин*"),
        actor("zelensky", "Zelensky", "Zelenskiy", "Zelenskyy", "Zelenskyi"),
        actor("lavrov", "Lavrov", "Sergei Lavrov", "Sergey Lavrov"),
        actor("lukashenka", "Lukashenka", "Lukashenko"),
        actor("ukraine", "Ukraine", "Ukrainian", "Kyiv", "Kiev"),
        actor("russia", "Russia", "Russian", "Moscow", "Kremlin"),
        actor("donbas", "Donbas", "Donbass"),
        actor("us", Alias("US", case_sensitive=True), "U.S.", "United States"),
        actor("nato", Alias("NATO", case_sensitive=True)),
        actor("osce", Alias("OSCE", case_sensitive=True)),
        actor("blinken", "Blinken", "Antony Blinken"),
    ]
}


def rules(*watches: tuple[str, str] | WatchSpec) -> object:
    specs = tuple(
        w if isinstance(w, WatchSpec) else WatchSpec(w[0], parse_query(w[1])) for w in watches
    )
    return compile_rules(RuleSet(ACTORS, specs))


def found_texts(query: str, text: str, title: str = "") -> list[str]:
    """What the article says where the watch's terms were found."""
    (m,) = match(rules(("w", query)), Document(title, text)) or [None]
    return [] if m is None else [hit.text for hit in m.hits]


# --------------------------------------------------------------------------------------------------
# Every spelling in the corpus, and no look-alike


@pytest.mark.parametrize(
    ("number", "query", "spellings"),
    [
        ("001", "@zelensky", {"Zelenskiy"}),
        ("002", "@zelensky", {"Zelenskyy"}),
        ("001", "@lukashenka", {"Lukashenka"}),
        ("003", "@lavrov", {"Sergei Lavrov", "Lavrov"}),
        ("002", "@lavrov", {"Sergey Lavrov", "Lavrov"}),
        ("002", "@ukraine", {"Ukraine", "Ukrainian", "Kiev", "Kyiv", "KYIV"}),  # Kyiv's, ...
        ("004", "@ukraine", {"Ukraine", "Ukrainian", "Kiev"}),
        ("000", "@donbas", {"Donbas"}),
        ("004", "@donbas", {"Donbass"}),
        ("004", "@russia", {"Russia", "Russian", "Moscow", "Kremlin"}),
        ("001", "@us", {"U.S", "United States"}),
        ("004", "@us", {"US", "United States"}),  # and "United States’"
        ("003", "@nato", {"NATO"}),  # and NATO's
        ("003", "@osce", {"OSCE"}),
    ],
)
def test_every_spelling_of_an_actor_in_the_corpus_is_found(number, query, spellings):
    assert set(found_texts(query, corpus(number))) == spellings


def test_a_damaged_word_is_not_taken_for_an_acronym():
    # 002 splits "senators" into "se nators" and "Lavrov" into "L avrov"
    text = corpus("002")
    assert "nators" in text
    assert "NATO" not in [t.upper() for t in found_texts("@nato", "the se nators met")]
    assert found_texts("@nato", text) == ["NATO"] * 4


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("@us", "they are warning us not to get in the way"),  # lower-case "us" is not the US
        ("@us", "Us and them"),
        ("@nato", "nato, written in lower case by a careless feed"),
        ("@nato", "SENATOR Smith; the senators; NATOs"),
        ("@russia", "Prussia and Belorussia are other words"),
        ("@ukraine", "the Ukrainianisation debate"),
        ("@putin", "Putinism is a different word"),
        ("troops", "a troupe of actors; the trooper"),
        ("sanction*", "the sanctity of borders"),
        ('"military buildup"', "military personnel build up their strength"),
    ],
)
def test_look_alike_words_do_not_match(query, text):
    assert found_texts(query, text) == []


# --------------------------------------------------------------------------------------------------
# Normalisation


@pytest.mark.parametrize(
    ("query", "text", "found"),
    [
        ("@zelensky", "Zelenskyy’s office said", ["Zelenskyy"]),
        ("@zelensky", "ZELENSKIY said", ["ZELENSKIY"]),
        ("@zelensky", "Zelenskýy, with a diacritic", ["Zelenskýy"]),
        ("@ukraine", "Kyiv's mayor and Kyiv’s police", ["Kyiv", "Kyiv"]),
        ("@russia", "the Russia-Ukraine border", ["Russia"]),
        ("@russia", "pro-Russian separatists", ["Russian"]),
        ("@us", "U.S.-led talks", ["U.S"]),
        ("@putin", "Путина и Путину", ["Путина", "Путину"]),
        ("buildup", "a military build-up", ["build-up"]),
        ("build-up", "a military buildup", ["buildup"]),
        ("build-up", "they build up forces", ["build up"]),
        ('"military buildup"', "the military build-up near the border", ["military build-up"]),
        ("Luhansk", "in Luhans'k and Luhansk", ["Luhans'k", "Luhansk"]),
        ("Luhans'k", "in Luhans'k and Luhansk", ["Luhans'k", "Luhansk"]),
        ("cafe", "a café in Kyiv", ["café"]),
    ],
)
def test_case_diacritics_apostrophes_and_hyphens_do_not_matter(query, text, found):
    assert found_texts(query, text) == found


def test_a_case_sensitive_alias_is_checked_against_the_text_as_written():
    assert found_texts("@us", "US troops; us; Us; U.S. envoy") == ["US", "U.S"]


# --------------------------------------------------------------------------------------------------
# Inflection: a plain keyword matches its regular inflections


@pytest.mark.parametrize(
    ("keyword", "text", "found"),
    [
        ("troops", "one troop, many troops", ["troop", "troops"]),
        ("troop", "one troop, many troops", ["troop", "troops"]),
        (
            "sanction",
            "sanction, sanctions, sanctioned, sanctioning",
            ["sanction", "sanctions", "sanctioned", "sanctioning"],
        ),
        ("invade", "invades, invaded, invading, invasion", ["invades", "invaded", "invading"]),
        ("ban", "bans, banned, banning", ["bans", "banned", "banning"]),
        ("country", "countries", ["countries"]),
        ('"military buildup"', "military buildups", ["military buildups"]),
        ("news", "new news", ["news"]),  # short words in -s are taken as written
    ],
)
def test_keywords_match_their_regular_inflections(keyword, text, found):
    assert found_texts(keyword, text) == found


def test_a_wildcard_and_an_actor_are_not_inflected():
    assert found_texts("@blinken", "Blinkens and Blinken") == ["Blinken"]
    assert found_texts("sanction*", "sanctions and sanctioned") == ["sanctions", "sanctioned"]


def test_inflection_can_be_turned_off_per_watch():
    exact = WatchSpec("w", parse_query("troops"), inflect=False)
    (m,) = match(rules(exact), Document("", "one troop, many troops"))
    assert [h.text for h in m.hits] == ["troops"]


# --------------------------------------------------------------------------------------------------
# Boolean logic and proximity


PARAGRAPHS = (
    "Russia has massed troops near the border. Officials in Kyiv are worried.\n"
    "Talks on sanctions continue in Geneva. Blinken met Lavrov.\n"
    "Nobody mentioned the exercise."
)


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("@russia AND troops", True),
        ("@russia AND tanks", False),
        ("@russia OR tanks", True),
        ("@russia AND troops NOT exercise", False),
        ("@russia AND troops NOT drill", True),
        ("@russia NEAR/sentence troops", True),
        ("@russia NEAR/sentence sanctions", False),
        ("@russia NEAR/paragraph @ukraine", True),
        ("@russia NEAR/paragraph sanctions", False),
        ("sanctions NEAR/paragraph @blinken", True),
        ("@russia NEAR/3 troops", True),  # Russia has massed troops: 3 words apart
        ("@russia NEAR/2 troops", False),
        ("troops NEAR/3 @russia", True),  # either order
        ("(@blinken OR @putin) NEAR/2 @lavrov", True),
        ('"massed troops" AND (@ukraine OR @donbas)', True),
    ],
)
def test_boolean_and_proximity_logic(query, matches):
    assert bool(match(rules(("w", query)), Document("", PARAGRAPHS))) is matches


def test_proximity_never_pairs_the_title_with_the_text():
    doc = Document("Russia warns", "Thousands of troops were seen.")
    assert not match(rules(("w", "@russia NEAR/sentence troops")), doc)
    assert match(rules(("w", "@russia AND troops")), doc)


def test_a_watch_can_look_at_the_title_only():
    title_only = WatchSpec("w", parse_query("@russia"), fields=("title",))
    assert not match(rules(title_only), Document("Talks in Geneva", "Russia said no."))
    (m,) = match(rules(title_only), Document("Russia says no", "Russia said no."))
    assert [(h.field, h.text) for h in m.hits] == [("title", "Russia")]
    assert m.score == 3  # the title's weight: the text's Russia is not looked at


def test_a_title_hit_weighs_more_than_a_text_hit_and_the_threshold_applies():
    watch = WatchSpec("w", parse_query("@russia OR troops"), threshold=3)
    r = rules(watch)
    assert not match(r, Document("Talks", "Russia moved troops."))  # 1 + 1 < 3
    (m,) = match(r, Document("Russia moves", "troops."))  # 3 (title) + 1 (text)
    assert m.score == 4
    (m,) = match(r, Document("Russia moves", "Russia and its troops."))  # +1: Russia in the text
    assert m.score == 5


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        (Filters(), True),
        (Filters(outlets=frozenset({"rferl"})), True),
        (Filters(outlets=frozenset({"tass"})), False),
        (Filters(tags=frozenset({"wire", "ukraine"})), True),
        (Filters(tags=frozenset({"state-media"})), False),
        (Filters(languages=frozenset({"en"})), True),  # en-GB is English
        (Filters(languages=frozenset({"ru"})), False),
    ],
)
def test_outlet_tag_and_language_filters(filters, matches):
    watch = WatchSpec("w", parse_query("@russia"), filters=filters)
    doc = Document("", "Russia", frozenset({"rferl", "ap"}), frozenset({"wire"}), "en-GB")
    assert bool(match(rules(watch), doc)) is matches


# --------------------------------------------------------------------------------------------------
# Results


def test_a_match_records_every_term_with_field_and_offsets():
    doc = Document("Blinken in Kyiv", "Blinken met Zelenskyy. Russian troops wait.")
    (m,) = match(rules(("w", "@blinken AND (@ukraine OR @zelensky) AND troops")), doc)
    got = [(h.term, h.field, h.start, h.end, h.text) for h in m.hits]
    assert got == [
        ("@blinken", "title", 0, 7, "Blinken"),
        ("@ukraine", "title", 11, 15, "Kyiv"),
        ("@blinken", "text", 0, 7, "Blinken"),
        ("@zelensky", "text", 12, 21, "Zelenskyy"),
        ("troops", "text", 31, 37, "troops"),
    ]
    assert m.terms == ("@blinken", "@ukraine", "@zelensky", "troops")
    for hit in m.hits:
        source = doc.title if hit.field == "title" else doc.text
        assert source[hit.start : hit.end] == hit.text


def test_the_snippet_is_the_sentence_with_most_terms_with_the_terms_marked():
    text = corpus("003")
    (m,) = match(rules(("w", "@lavrov NEAR/sentence @blinken")), Document("", text))
    marked = m.snippet.marked("[", "]")
    assert "[Antony Blinken]" in marked and "[Sergei Lavrov]" in marked
    assert len(m.snippet.text) <= 330
    start, end = m.snippet.marks[0]
    assert m.snippet.text[start:end] == "Antony Blinken"


def test_a_long_sentence_is_cut_around_its_first_term():
    text = "Filler words here. " + "Word " * 200 + "then Russia appears " + "more " * 200 + "."
    (m,) = match(rules(("w", "@russia")), Document("", text))
    assert m.snippet.text.startswith("…") and m.snippet.text.endswith("…")
    assert m.snippet.marked().count("**Russia**") == 1
    assert len(m.snippet.text) <= 330


# --------------------------------------------------------------------------------------------------
# Compiled: one automaton, and only the watches a found term can trigger are evaluated


def test_only_watches_whose_every_clause_met_a_found_term_are_looked_at():
    watches = [("hit", "@russia AND troops"), ("alone", "troops OR tanks")] + [
        (f"other-{i}", f"keyword{i} AND (@putin OR @russia)") for i in range(500)
    ]
    r = rules(*watches)
    found = find(r, Document("", "Russia sent troops."))
    # the 500 others share @russia, but each also needs its own keyword: none is looked at
    assert [r.watches[i].name for i in candidates(r, found.by_term)] == ["hit", "alone"]
    assert [m.watch for m in match(r, Document("", "Russia sent troops."))] == ["hit", "alone"]


def test_a_watch_of_ands_ors_and_nots_is_decided_by_set_operations():
    r = rules(("plain", "@russia AND (troops OR tanks) NOT exercise"), ("near", "a NEAR/3 b"))
    assert [w.decided_by_sets for w in r.watches] == [True, False]
    assert not match(r, Document("", "Russia sent troops for an exercise."))
    assert [m.watch for m in match(r, Document("", "Russia sent troops."))] == ["plain"]


def test_an_or_of_ands_is_looked_at_only_when_one_alternative_is_met_whole():
    r = rules(
        ("either", '"peace talks" OR (@russia AND troops) OR ceasefire'),
        ("unless", '"peace talks" OR (@russia AND NOT troops)'),
    )
    assert [w.decided_by_sets for w in r.watches] == [True, False]
    assert len(r.watches[0].ways) == 2  # @russia AND troops; "peace talks" OR ceasefire
    russia = find(r, Document("", "Russia said nothing."))
    assert [r.watches[i].name for i in candidates(r, russia.by_term)] == ["unless"]
    for text, matched in [
        ("Russia said nothing.", ["unless"]),
        ("Russia sent troops.", ["either"]),
        ("Troops and a ceasefire.", ["either"]),
        ("Peace talks with Russia; troops.", ["either", "unless"]),
        ("Nothing here.", []),
    ]:
        assert [m.watch for m in match(r, Document("", text))] == matched, text


def test_identical_terms_of_different_watches_are_one_term():
    r = rules(("a", "@russia AND troops"), ("b", "troops OR @russia"), ("c", "troop"))
    assert sorted(t.label for t in r.terms) == ["@russia", "troop", "troops"]


def test_terms_found_are_reported_once_per_place():
    r = rules(("w", "build-up"))
    found = find(r, Document("", "the build-up"))
    (hits,) = found.by_term.values()
    assert [(h.start, h.end) for h in hits] == [(4, 12)]


def test_an_alias_with_nothing_to_match_is_refused():
    with pytest.raises(RuleCompileError, match="alias '—' has no letters or digits"):
        compile_rules(RuleSet({"x": actor("x", "—")}, (WatchSpec("w", parse_query("@x")),)))


def test_an_unknown_actor_is_refused_at_compile_time():
    with pytest.raises(RuleCompileError, match="unknown actor @nobody"):
        rules(("w", "@nobody"))


# --------------------------------------------------------------------------------------------------
# The shipped actors.yaml, on the corpus


SHIPPED_SPELLINGS = [
    ("000", "putin", "Putin"),
    ("000", "donbas", "Donbas"),
    ("001", "zelensky", "Zelenskiy"),
    ("001", "lukashenka", "Alyaksandr Lukashenka"),
    ("001", "belarus", "Belarus"),
    ("001", "crimea", "Crimea"),
    ("001", "us", "U.S"),
    ("002", "zelensky", "Zelenskyy"),
    ("002", "lavrov", "Sergey Lavrov"),
    ("002", "ukraine", "Kiev"),
    ("002", "ukraine", "KYIV"),
    ("002", "biden", "Biden"),
    ("003", "lavrov", "Sergei Lavrov"),
    ("003", "osce", "OSCE"),
    ("003", "kuleba", "Kuleba"),
    ("003", "nato", "NATO"),
    ("004", "donbas", "Donbass"),
    ("004", "russia", "Kremlin"),
    ("004", "us", "US"),
]


@pytest.fixture(scope="module")
def shipped():
    from monitor.config.rules import load_rules

    actors = load_rules(Path(__file__).parent.parent / "config").actors
    specs = tuple(WatchSpec(name, parse_query(f"@{name}")) for name in actors)
    return compile_rules(RuleSet(actors, specs))


@pytest.mark.parametrize(("number", "actor", "spelling"), SHIPPED_SPELLINGS)
def test_the_shipped_actors_find_every_spelling_in_the_corpus(shipped, number, actor, spelling):
    text = corpus(number)
    found = {m.watch: {h.text for h in m.hits} for m in match(shipped, Document("", text))}
    assert spelling in found[actor]


def test_the_shipped_actors_do_not_fire_on_look_alikes(shipped):
    text = "The senators and the Prussian envoy told us; Eunice and Usman met the nato-fan club."
    assert {m.watch for m in match(shipped, Document("", text))} == set()
