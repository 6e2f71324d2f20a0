"""monitor.config.rules: actors.yaml, watches.yaml and channels.yaml resolved into a RuleSet."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.config import (
    ConfigError,
    FeedSpec,
    WatchConfig,
    keyword_leaf,
    load_config,
    load_rules,
    watch_expr,
)
from monitor.rules import (
    ActorRef,
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    QuerySyntaxError,
    Term,
    parse_query,
)
from monitor.rules.spec import ActorSpec, Alias, Delivery, Filters, RuleSet, WatchSpec
from tests.support import CORPUS

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "config" / "rules"
BAD = FIXTURES / "bad"
GOOD = FIXTURES / "good"

SECRET_ENV = {"QUERY": "hunter2 troops", "SLACK_TOKEN": "hunter2-token"}

# Every directory in fixtures/config/rules/bad/, with the environment it is loaded under. Each
# holds some of actors.yaml, watches.yaml and channels.yaml, and `expected`: the exact error.
BAD_CASES = [
    pytest.param("actor_errors", {}, id="bad actor names and aliases"),
    pytest.param("duplicate_aliases", {}, id="duplicate aliases within an actor"),
    pytest.param("duplicate_names", {}, id="duplicate actor, watch and key, with both lines"),
    pytest.param("keyword_errors", {}, id="keywords that are not one word, phrase or prefix"),
    pytest.param("query_syntax_errors", SECRET_ENV, id="query syntax errors at the character"),
    pytest.param("watch_shape_errors", {}, id="empty watches, near and digest misused"),
    pytest.param("unknown_references", {}, id="unknown actors and channels, did you mean"),
    pytest.param("notify_without_channels_file", {}, id="notify without channels.yaml"),
    pytest.param("bad_values", {}, id="wrong values for every watch key"),
    pytest.param("bad_channels", SECRET_ENV, id="bad channels"),
    pytest.param("channel_options", {}, id="bad timezone, quiet hours, rate, format"),
    pytest.param("channel_url_files", {}, id="a url_file missing, or given with url"),
    pytest.param("issues_in_every_file", {}, id="issues of all three files at once"),
    pytest.param("broken_actors_file", {}, id="no unknown-actor noise when actors.yaml fails"),
    pytest.param("watches_not_a_mapping", {}, id="watches.yaml is a list"),
]


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def _issues(directory: Path, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_rules(directory, **kwargs)
    return str(caught.value).splitlines()


# --------------------------------------------------------------------------------------------------
# Bad fixtures: exact messages


@pytest.mark.parametrize(("case", "env"), BAD_CASES)
def test_bad_rule_files_are_reported_with_exact_positions_and_messages(
    case: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    expected = (BAD / case / "expected").read_text(encoding="utf-8").rstrip("\n")
    with pytest.raises(ConfigError) as caught:
        load_rules(Path("bad") / case, env=env)
    assert str(caught.value) == expected


def test_every_bad_rules_fixture_has_an_expected_error_and_a_case_in_the_table() -> None:
    on_disk = {path.name for path in BAD.iterdir() if path.is_dir()}
    expected = {path.parent.name for path in BAD.glob("*/expected")}
    in_table = {case.values[0] for case in BAD_CASES}
    assert on_disk == expected == in_table


@pytest.mark.parametrize("case", ["query_syntax_errors", "bad_channels"])
def test_the_value_of_an_environment_variable_never_appears_in_a_rules_error(case: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_rules(BAD / case, env=SECRET_ENV)
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_reference_read_from_the_environment_is_not_echoed(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "watches.yaml": "watches:\n  w:\n    keywords: [x]\n    notify: ['${DESK}']\n",
            "channels.yaml": "channels:\n  desk:\n    url: console://\n",
        },
    )
    assert _issues(folder, env={"DESK": "hunter2-desk"}) == [
        f"{folder}/watches.yaml:4:14: watches.w.notify[0]: unknown channel '***' "
        "(not in channels.yaml)"
    ]


def test_an_issue_in_a_query_stays_at_its_value_when_it_came_from_the_environment(
    tmp_path: Path,
) -> None:
    folder = _write(tmp_path, {"watches.yaml": "watches:\n  w:\n    query: ${Q}\n"})
    assert _issues(folder, env={"Q": "troops &"}) == [
        f"{folder}/watches.yaml:3:12: watches.w.query: column 8: unexpected character '&'"
    ]


# --------------------------------------------------------------------------------------------------
# Good files


def test_every_form_of_actor_and_alias_resolves() -> None:
    rules = load_rules(GOOD, env={"SLACK_A": "a", "SLACK_B": "b", "SLACK_C": "c"})
    assert rules.actors == {
        "putin": ActorSpec(
            "putin", (Alias("Putin"), Alias("Vladimir Putin"), Alias("Путин*")), "Vladimir Putin"
        ),
        "russia": ActorSpec("russia", (Alias("Russia"), Alias("Kremlin"))),
        "us": ActorSpec(
            "us", (Alias("US", case_sensitive=True), Alias("U.S."), Alias("United States"))
        ),
        "kyiv-independent_2": ActorSpec("kyiv-independent_2", (Alias("Kyiv Independent"),)),
    }


def test_every_watch_key_resolves_into_the_watch_spec() -> None:
    rules = load_rules(GOOD, env={"SLACK_A": "a", "SLACK_B": "b", "SLACK_C": "c"})
    everything = rules.watches[0]
    assert everything == WatchSpec(
        name="everything",
        expr=And(
            (
                Near(
                    Or((ActorRef("putin"), ActorRef("russia"))),
                    Or(
                        (
                            Term("troops"),
                            Phrase(("military", "buildup")),
                            Prefix("sanction"),
                            Phrase(("economic", "consequences")),
                        )
                    ),
                    10,
                ),
                Or((Term("border"), ActorRef("us"))),
                Term("Kyiv"),
                Not(Term("sport")),
                Term("invasion"),
                Not(Phrase(("exercise", "ended"))),
                Not(ActorRef("kyiv-independent_2")),
            )
        ),
        fields=("title",),
        filters=Filters(
            outlets=frozenset({"rferl"}),
            tags=frozenset({"wire"}),
            languages=frozenset({"en", "pt-BR"}),
        ),
        weights={"title": 5.0, "text": 0.5},
        threshold=2.5,
        inflect=False,
        delivery=Delivery(channels=("desk-slack", "console"), digest="30 7 * * mon-fri"),
    )


def test_a_watch_gets_the_defaults_for_every_key_it_leaves_out() -> None:
    rules = load_rules(GOOD, env={"SLACK_A": "a", "SLACK_B": "b", "SLACK_C": "c"})
    minimal = rules.watches[1]
    assert minimal == WatchSpec(name="minimal", expr=Term("troops"))
    assert minimal.fields == ("title", "text")
    assert minimal.weights == {"title": 3.0, "text": 1.0}
    assert (minimal.threshold, minimal.inflect) == (0.0, True)
    assert minimal.filters == Filters() and minimal.delivery == Delivery(channels=(), digest=None)


def test_anchors_and_merge_keys_work_in_watches_and_disabled_watches_are_left_out() -> None:
    rules = load_rules(GOOD, env={"SLACK_A": "a", "SLACK_B": "b", "SLACK_C": "c"})
    assert [watch.name for watch in rules.watches] == ["everything", "minimal", "merged", "aliased"]
    merged, aliased = rules.watches[2:]
    assert merged.expr == ActorRef("putin")
    assert merged.delivery == Delivery(channels=("desk-slack",), digest="0 7 * * *")
    assert aliased.delivery == Delivery(channels=("desk-slack",))


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({}, id="no files at all"),
        pytest.param({"actors.yaml": "", "watches.yaml": "", "channels.yaml": ""}, id="empty"),
        pytest.param(
            {"actors.yaml": "actors:\n", "watches.yaml": "watches:\n", "channels.yaml": "# none\n"},
            id="empty sections",
        ),
    ],
)
def test_missing_or_empty_rule_files_define_nothing(tmp_path: Path, files: dict[str, str]) -> None:
    assert load_rules(_write(tmp_path, files), env={}) == RuleSet(actors={}, watches=())


def test_actors_without_watches_resolve(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"actors.yaml": "actors:\n  nato:\n    aliases: [NATO]\n"})
    rules = load_rules(folder, env={})
    assert rules == RuleSet(actors={"nato": ActorSpec("nato", (Alias("NATO"),))}, watches=())


# --------------------------------------------------------------------------------------------------
# The shipped configuration


@pytest.fixture(scope="module")
def starter() -> RuleSet:
    config = load_config(REPO / "config", env={})
    return load_rules(REPO / "config", env={}, feeds=config.feeds)


def test_the_shipped_rule_files_load_and_resolve(starter: RuleSet) -> None:
    crisis = {"putin", "zelensky", "blinken", "lavrov", "biden", "kuleba", "lukashenka", "shoigu"}
    crisis |= {"peskov", "stoltenberg", "nato", "russia", "ukraine", "donbas", "crimea"}
    crisis |= {"belarus", "eu", "osce", "us"}
    assert crisis <= set(starter.actors)
    assert {"troop-buildup", "sanctions"} <= {watch.name for watch in starter.watches}
    assert all(watch.delivery.channels == ("console",) for watch in starter.watches)


@pytest.mark.parametrize(
    ("actor", "spelling"),
    [
        ("zelensky", "Zelenskiy"),
        ("zelensky", "Zelenskyy"),
        ("zelensky", "Zelensky"),
        ("ukraine", "Kyiv"),
        ("ukraine", "Kiev"),
        ("lavrov", "Sergei Lavrov"),
        ("lavrov", "Sergey Lavrov"),
        ("donbas", "Donbas"),
        ("donbas", "Donbass"),
        ("lukashenka", "Alyaksandr Lukashenka"),
        ("osce", "OSCE"),
        ("nato", "NATO"),
        ("us", "U.S."),
        ("us", "United States"),
        ("crimea", "Crimean"),
    ],
)
def test_the_shipped_actors_spell_names_as_the_sample_articles_do(
    starter: RuleSet, actor: str, spelling: str
) -> None:
    assert spelling in {alias.text for alias in starter.actors[actor].aliases}
    assert any(spelling in path.read_text(encoding="utf-8") for path in CORPUS.glob("*.txt"))


def test_short_ambiguous_names_are_case_sensitive_in_the_shipped_actors(starter: RuleSet) -> None:
    sensitive = {alias.text for actor in starter.actors.values() for alias in actor.aliases} & {
        "US",
        "EU",
        "NATO",
        "OSCE",
    }
    assert sensitive == {"US", "EU", "NATO", "OSCE"}
    for actor in starter.actors.values():
        for alias in actor.aliases:
            if alias.text in sensitive:
                assert alias.case_sensitive, alias


# --------------------------------------------------------------------------------------------------
# Structured watches and queries compile to the same AST


EQUIVALENT: list[Any] = [
    pytest.param(
        {"actors": ["putin", "russia"], "keywords": ["troops", "invasion"]},
        "(@putin OR @russia) AND (troops OR invasion)",
        id="actors and keywords",
    ),
    pytest.param({"actors": ["putin"], "keywords": ["troops"]}, "@putin troops", id="one of each"),
    pytest.param(
        {"keywords": ["military buildup", '"economic consequences"', "sanction*"]},
        '"military buildup" OR "economic consequences" OR sanction*',
        id="phrases and a prefix",
    ),
    pytest.param(
        {"actors": ["putin", "russia"], "keywords": ["troops", "military buildup"], "near": 5},
        '(@putin OR @russia) NEAR/5 (troops OR "military buildup")',
        id="near",
    ),
    pytest.param(
        {"groups": [["troops", "soldiers"], ["border", "@belarus"]]},
        "(troops OR soldiers) AND (border OR @belarus)",
        id="groups",
    ),
    pytest.param(
        {"keywords": ["troops"], "exclude": ["exercise ended", "drill*", "@belarus"]},
        'troops NOT "exercise ended" NOT drill* NOT @belarus',
        id="exclude",
    ),
    pytest.param(
        {"keywords": ["troops"], "query": "(@putin OR sanction*) NOT sport"},
        "troops AND (@putin OR sanction*) NOT sport",
        id="structured keys and a query",
    ),
    pytest.param(
        {
            "actors": ["russia"],
            "keywords": ["troops"],
            "near": "sentence",
            "groups": [["border"]],
            "query": "a OR b",
            "exclude": ["drill*"],
        },
        "@russia NEAR/sentence troops AND border AND (a OR b) AND NOT drill*",
        id="everything at once",
    ),
]


@pytest.mark.parametrize(("structured", "query"), EQUIVALENT)
def test_a_structured_watch_equals_the_query_that_says_the_same(
    structured: dict[str, Any], query: str
) -> None:
    watch = WatchConfig.model_validate(_as_loaded(structured))
    assert watch_expr(watch) == parse_query(query)
    assert watch_expr(WatchConfig.model_validate({"query": query})) == parse_query(query)


def _as_loaded(data: Any) -> Any:
    """`data` as the YAML loader hands it over: lists as tuples (strict models want those)."""
    if isinstance(data, dict):
        return {key: _as_loaded(value) for key, value in data.items()}
    if isinstance(data, list):
        return tuple(map(_as_loaded, data))
    return data


@pytest.mark.parametrize(
    ("text", "leaf"),
    [
        ("troops", Term("troops")),
        ("  troops ", Term("troops")),
        ("build-up", Term("build-up")),
        ("U.S.", Term("U.S.")),
        ("military buildup", Phrase(("military", "buildup"))),
        ("law and order", Phrase(("law", "and", "order"))),
        ('"military buildup"', Phrase(("military", "buildup"))),
        ("sanction*", Prefix("sanction")),
        ("Путин*", Prefix("Путин")),
    ],
)
def test_a_keyword_is_a_word_a_phrase_or_a_prefix(text: str, leaf: Node) -> None:
    assert keyword_leaf(text) == leaf


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("a OR b", 3, "OR cannot be used in a keyword"),
        ("(a)", 1, "'(' cannot be used in a keyword"),
        ("@putin", 1, "an actor belongs under actors:, not keywords"),
        ("sanction* regime", 9, "wildcards are not allowed inside a phrase"),
        ("", 1, "empty keyword"),
    ],
)
def test_a_keyword_that_needs_a_query_is_refused_with_its_column(
    text: str, column: int, reason: str
) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        keyword_leaf(text)
    assert caught.value.column == column
    assert caught.value.reason.startswith(reason)


def test_an_actor_is_a_group_or_exclude_item_but_not_a_keyword() -> None:
    assert keyword_leaf("@belarus", actors=True) == ActorRef("belarus")
    with pytest.raises(QuerySyntaxError):
        keyword_leaf("@belarus")


@pytest.mark.parametrize(
    "name", ["putin", "us", "kyiv-independent", "vladimir_putin", "g7", "a-b_c"]
)
def test_every_valid_actor_name_can_be_referenced_from_a_query(name: str, tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "actors.yaml": f"actors:\n  {name}:\n    aliases: [x]\n",
            "watches.yaml": f"watches:\n  w:\n    query: '@{name} troops'\n",
        },
    )
    (watch,) = load_rules(folder, env={}).watches
    assert watch.expr == And((ActorRef(name), Term("troops")))


# --------------------------------------------------------------------------------------------------
# References to feeds.yaml


def _feed(outlet: str, *tags: str) -> FeedSpec:
    return FeedSpec(
        outlet, outlet, outlet, f"https://{outlet}.example/rss", timedelta(minutes=15), "en", tags
    )


def test_with_the_feeds_a_watchs_outlets_and_tags_must_exist(tmp_path: Path) -> None:
    text = (
        "watches:\n  w:\n    keywords: [x]\n    outlets: [rferl, aap]\n    tags: [wire, wires, zz]"
    )
    folder = _write(tmp_path, {"watches.yaml": text})
    feeds = [_feed("rferl", "ukraine"), _feed("ap", "wire")]
    assert _issues(folder, env={}, feeds=feeds) == [
        f"{folder}/watches.yaml:4:22: watches.w.outlets[1]: unknown outlet 'aap' "
        "(did you mean 'ap'?)",
        f"{folder}/watches.yaml:5:18: watches.w.tags[1]: unknown tag 'wires' "
        "(did you mean 'wire'?)",
        f"{folder}/watches.yaml:5:25: watches.w.tags[2]: unknown tag 'zz' "
        "(no feed in feeds.yaml has it)",
    ]
    assert load_rules(folder, env={}).watches[0].filters.outlets == {"rferl", "aap"}


# --------------------------------------------------------------------------------------------------
# Channels and delivery timing


def test_channels_resolve_with_format_zone_quiet_hours_rate_and_a_url_from_a_file(
    tmp_path: Path,
) -> None:
    from datetime import time, timedelta

    (tmp_path / "slack-url").write_text("slack://T000/B000/XXXX/#desk\n")
    _write(
        tmp_path,
        {
            "channels.yaml": "channels:\n"
            "  desk:\n    url_file: slack-url\n    timezone: Europe/Kyiv\n"
            "    quiet_hours: '22:00-07:30'\n    rate_limit: 20/1h\n    max_entries: 5\n"
            "  mail:\n    url: mailtos://u:p@smtp.example.org\n"
            "  hook:\n    url: json://127.0.0.1:9/hook\n    format: markdown\n",
            "watches.yaml": "watches:\n  w:\n    keywords: [troops]\n    notify: [desk]\n"
            "    group_wait: 10s\n    repeat_interval: 2h\n    updates: false\n",
        },
    )
    rules = load_rules(tmp_path)
    desk, mail, hook = (rules.channels[n] for n in ("desk", "mail", "hook"))
    assert (desk.url, desk.format, desk.timezone) == (
        "slack://T000/B000/XXXX/#desk",
        "slack",
        "Europe/Kyiv",
    )
    assert desk.quiet_hours == (time(22, 0), time(7, 30))
    assert desk.rate_limit == (20, timedelta(hours=1))
    assert desk.max_entries == 5 and "XXXX" not in repr(desk)  # the URL never shows in a repr
    assert (mail.format, hook.format) == ("email", "markdown")
    (watch,) = rules.watches
    assert watch.delivery.group_wait == timedelta(seconds=10)
    assert watch.delivery.repeat_interval == timedelta(hours=2)
    assert watch.delivery.group_interval is None and watch.delivery.updates is False
