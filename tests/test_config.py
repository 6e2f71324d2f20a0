"""monitor.config: strict YAML config with exact, positioned errors."""

from __future__ import annotations

import pickle
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, ValidationError

from monitor.config import (
    Config,
    ConfigError,
    ConfigIssue,
    FeedsFile,
    FeedSpec,
    PositiveDuration,
    Settings,
    StrictModel,
    duration_text,
    load_config,
    load_yaml_model,
    parse_duration,
    parse_size,
    size_text,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "config"
BAD = FIXTURES / "bad"
GOOD = FIXTURES / "good"

# Values that must never show up in an error message.
SECRET_ENV = {"POLL_INTERVAL": "hunter2 minutes", "BATCH": "hunter2"}

# Every file in fixtures/config/bad/, with the environment it is loaded under. Each
# `<name>.<monitor|feeds>.yaml` sits next to `<name>.<monitor|feeds>.expected`, the exact error.
BAD_CASES = [
    pytest.param("unknown_top_level_key.monitor", {}, id="unknown top-level key"),
    pytest.param("unknown_nested_key.monitor", {}, id="unknown nested key"),
    pytest.param("unknown_key_without_suggestion.feeds", {}, id="unknown key lists allowed keys"),
    pytest.param("wrong_types.monitor", {}, id="wrong scalar types"),
    pytest.param("section_not_a_mapping.monitor", {}, id="section is not a mapping"),
    pytest.param("root_not_a_mapping.feeds", {}, id="document is not a mapping"),
    pytest.param("bad_url.feeds", {}, id="bad feed URLs"),
    pytest.param("bad_duration.monitor", {}, id="bad durations"),
    pytest.param("bad_size.monitor", {}, id="bad size"),
    pytest.param("bad_allow_network.monitor", {}, id="bad allowed network"),
    pytest.param("zero_size.monitor", {}, id="zero size"),
    pytest.param("jitter_too_high.monitor", {}, id="jitter above 0.5"),
    pytest.param("jitter_negative.monitor", {}, id="jitter below 0"),
    pytest.param("yaml_syntax_error.feeds", {}, id="YAML syntax error"),
    pytest.param("yaml_tab_indent.monitor", {}, id="YAML tab indentation"),
    pytest.param("yaml_duplicate_key.monitor", {}, id="YAML duplicate key"),
    pytest.param("unsupported_yaml_tag.monitor", {}, id="YAML custom tag"),
    pytest.param("non_string_key.feeds", {}, id="non-string keys"),
    pytest.param("missing_env_var.monitor", {}, id="missing environment variable"),
    pytest.param("env_default_invalid.monitor", {}, id="invalid default of a variable"),
    pytest.param("env_value_invalid.monitor", SECRET_ENV, id="invalid value of a variable"),
    pytest.param("invalid_env_reference.monitor", {}, id="malformed variable references"),
    pytest.param("duplicate_feed_url.feeds", {}, id="duplicate feed URL across outlets"),
    pytest.param("duplicate_feed_name.feeds", {}, id="duplicate feed names"),
    pytest.param("empty_feeds_list.feeds", {}, id="empty feeds list"),
    pytest.param("missing_feeds_key.feeds", {}, id="outlet without feeds"),
    pytest.param("bad_slug.feeds", {}, id="bad outlet slugs"),
    pytest.param("bad_language_and_tags.feeds", {}, id="bad language, tags and name"),
    pytest.param("missing_outlets.feeds", {}, id="feeds.yaml without outlets"),
    pytest.param("outlets_null.feeds", {}, id="outlets is null"),
    pytest.param("backoff_max_below_base.monitor", {}, id="backoff_max below backoff_base"),
    pytest.param("backoff_base_above_default_max.monitor", {}, id="backoff_base above default"),
    pytest.param("bad_database_url.monitor", {}, id="bad database URL"),
    pytest.param("many_issues.feeds", {}, id="all issues of a file at once"),
]


def _model_for(fixture: Path) -> type[BaseModel]:
    return Settings if fixture.name.endswith(".monitor.yaml") else FeedsFile


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL_FEEDS = "outlets:\n  ap:\n    feeds:\n      - url: https://apnews.com/world-news.rss\n"


# --------------------------------------------------------------------------------------------------
# Bad fixtures: exact messages


@pytest.mark.parametrize(("stem", "env"), BAD_CASES)
def test_a_bad_config_file_is_reported_with_exact_positions_and_messages(
    stem: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)
    fixture = Path("bad") / f"{stem}.yaml"
    expected = (BAD / f"{stem}.expected").read_text(encoding="utf-8").rstrip("\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(fixture, _model_for(fixture), env=env)
    assert str(caught.value) == expected


def test_every_bad_fixture_has_an_expected_error_and_a_case_in_the_table() -> None:
    on_disk = {path.name.removesuffix(".yaml") for path in BAD.glob("*.yaml")}
    expected = {path.name.removesuffix(".expected") for path in BAD.glob("*.expected")}
    in_table = {case.values[0] for case in BAD_CASES}
    assert on_disk == expected == in_table


def test_the_value_of_an_environment_variable_never_appears_in_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(BAD / "env_value_invalid.monitor.yaml", Settings, env=SECRET_ENV)
    assert len(caught.value.issues) == 2
    assert "hunter2" not in str(caught.value)
    # pydantic's own error quotes input values: it must not travel along as cause or context
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_an_invalid_database_url_from_the_environment_is_not_echoed(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitor.yaml", "database: ${DATABASE_URL}\n")
    env = {"DATABASE_URL": "postgres:/monitor:hunter2@db"}
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(path, Settings, env=env)
    assert [issue.key_path for issue in caught.value.issues] == ["database"]
    assert "hunter2" not in str(caught.value)


def test_a_plain_password_in_an_invalid_database_url_is_not_echoed_either() -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(BAD / "bad_database_url.monitor.yaml", Settings)
    assert "hunter2" not in str(caught.value)


def test_a_file_that_is_not_utf8_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_bytes(b"polling:\n  user_agent: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(path, Settings)
    assert str(caught.value) == f"{path}:2:1: (file): not valid UTF-8 text"


# --------------------------------------------------------------------------------------------------
# Issues and errors


def test_a_config_issue_reads_file_line_column_key_path_and_message() -> None:
    issue = ConfigIssue("config/feeds.yaml", 7, 14, "outlets.rferl.feeds[0].url", "bad")
    assert str(issue) == "config/feeds.yaml:7:14: outlets.rferl.feeds[0].url: bad"


def test_a_config_error_lists_one_issue_per_line_and_survives_pickling() -> None:
    issues = [ConfigIssue("a.yaml", 1, 1, "x", "one"), ConfigIssue("a.yaml", 2, 3, "y.z", "two")]
    error = ConfigError(issues)
    assert str(error) == "a.yaml:1:1: x: one\na.yaml:2:3: y.z: two"
    copy = pickle.loads(pickle.dumps(error))
    assert copy.issues == issues
    assert str(copy) == str(error)


# --------------------------------------------------------------------------------------------------
# monitor.yaml


def test_defaults_apply_when_monitor_yaml_is_missing(tmp_path: Path) -> None:
    _write(tmp_path, "feeds.yaml", MINIMAL_FEEDS)
    config = load_config(tmp_path, env={})
    polling = config.settings.polling
    assert config.settings.database is None
    assert (polling.interval, polling.jitter, polling.tick) == (
        timedelta(minutes=15),
        0.1,
        timedelta(seconds=5),
    )
    assert (polling.batch, polling.concurrency, polling.per_host) == (200, 20, 4)
    assert polling.lease == timedelta(minutes=5)
    assert (polling.connect_timeout, polling.read_timeout, polling.total_timeout) == (
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=60),
    )
    assert (polling.max_bytes, polling.max_redirects) == (5 * 1024 * 1024, 5)
    assert (polling.backoff_base, polling.backoff_max) == (timedelta(minutes=1), timedelta(hours=6))
    assert polling.first_run_window == timedelta(hours=24)
    assert (
        polling.user_agent == "monitor/0.1 (news monitor; +https://github.com/monitor-news/monitor)"
    )
    extract = config.settings.extract
    assert (
        extract.fetch_pages,
        extract.min_chars,
        extract.boilerplate_min_pages,
        extract.workers,
    ) == (
        True,
        200,
        3,
        2,
    )
    assert config.settings.retention.articles == timedelta(days=365)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty file"),
        pytest.param("# only a comment\n", id="only comments"),
        pytest.param("polling:\nextract:\nretention:\n", id="empty sections"),
    ],
)
def test_an_empty_monitor_yaml_or_empty_sections_mean_the_defaults(
    tmp_path: Path, text: str
) -> None:
    path = _write(tmp_path, "monitor.yaml", text)
    assert load_yaml_model(path, Settings, env={}) == Settings()


def test_every_setting_is_read_from_a_full_monitor_yaml() -> None:
    settings = load_yaml_model(GOOD / "full" / "monitor.yaml", Settings, env={})
    polling = settings.polling
    assert settings.database == "sqlite:///data/monitor.db"
    assert polling.interval == timedelta(hours=1, minutes=30)
    assert polling.jitter == 0
    assert polling.tick == timedelta(seconds=2)
    assert (polling.batch, polling.concurrency, polling.per_host, polling.max_redirects) == (
        50,
        8,
        2,
        0,
    )
    assert polling.lease == timedelta(minutes=10)
    assert (polling.connect_timeout, polling.read_timeout, polling.total_timeout) == (
        timedelta(seconds=5),
        timedelta(seconds=15),
        timedelta(minutes=2),
    )
    assert polling.max_bytes == 512 * 1024
    assert (polling.backoff_base, polling.backoff_max) == (timedelta(seconds=30), timedelta(days=1))
    assert polling.first_run_window == timedelta(0)
    assert polling.user_agent == "test-agent/1.0 (ops@example.org)"
    assert settings.extract.model_dump() == {
        "fetch_pages": False,
        "min_chars": 0,
        "boilerplate_min_pages": 5,
        "workers": 4,
    }
    assert settings.retention.articles == timedelta(days=30)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.polling.batch = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.database = "sqlite://"  # type: ignore[misc]


def test_yaml_anchors_aliases_and_merge_keys_are_allowed(tmp_path: Path) -> None:
    text = (
        "polling:\n"
        "  <<: {connect_timeout: 3s, read_timeout: &t 4s}\n"
        "  total_timeout: *t\n"
        "  tick: 1s\n"
    )
    polling = load_yaml_model(_write(tmp_path, "monitor.yaml", text), Settings, env={}).polling
    assert (polling.connect_timeout, polling.read_timeout, polling.total_timeout, polling.tick) == (
        timedelta(seconds=3),
        timedelta(seconds=4),
        timedelta(seconds=4),
        timedelta(seconds=1),
    )


def test_an_error_in_a_merged_key_points_at_the_mapping_it_was_merged_into(tmp_path: Path) -> None:
    text = "polling:\n  tick: 1s\n  <<: {connect_timeout: soon}\n"
    path = _write(tmp_path, "monitor.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(path, Settings, env={})
    (issue,) = caught.value.issues
    assert (issue.line, issue.key_path) == (2, "polling.connect_timeout")
    assert issue.message == "not a duration: 'soon' (use e.g. 30s, 15m, 6h, 7d)"


# --------------------------------------------------------------------------------------------------
# Environment interpolation


def test_environment_variables_are_substituted_in_string_values(tmp_path: Path) -> None:
    text = "database: postgresql+psycopg://monitor:${DB_PASSWORD}@127.0.0.1:5432/${DB_NAME}\n"
    path = _write(tmp_path, "monitor.yaml", text)
    settings = load_yaml_model(path, Settings, env={"DB_PASSWORD": "s3cr3t", "DB_NAME": "news"})
    assert settings.database == "postgresql+psycopg://monitor:s3cr3t@127.0.0.1:5432/news"
    assert settings.database_url(tmp_path) == settings.database


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, timedelta(minutes=10), id="unset variable uses the default"),
        pytest.param({"POLL": ""}, timedelta(minutes=10), id="empty variable uses the default"),
        pytest.param({"POLL": "2m"}, timedelta(minutes=2), id="set variable wins"),
    ],
)
def test_a_variable_default_applies_when_the_variable_is_unset_or_empty(
    tmp_path: Path, env: dict[str, str], expected: timedelta
) -> None:
    path = _write(tmp_path, "monitor.yaml", "polling:\n  interval: ${POLL:-10m}\n")
    assert load_yaml_model(path, Settings, env=env).polling.interval == expected


def test_a_doubled_dollar_keeps_a_literal_reference(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitor.yaml", 'polling:\n  user_agent: "a $${HOME} b $5"\n')
    assert (
        load_yaml_model(path, Settings, env={"HOME": "/root"}).polling.user_agent
        == "a ${HOME} b $5"
    )


def test_an_empty_database_value_means_the_default_database(tmp_path: Path) -> None:
    path = _write(tmp_path, "monitor.yaml", "database: ${MONITOR_DATABASE_URL:-}\n")
    assert load_yaml_model(path, Settings, env={}).database is None


def test_load_yaml_model_reads_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "monitor.yaml", "polling:\n  user_agent: ${MONITOR_TEST_AGENT}\n")
    monkeypatch.setenv("MONITOR_TEST_AGENT", "from-env/1.0")
    assert load_yaml_model(path, Settings).polling.user_agent == "from-env/1.0"
    monkeypatch.delenv("MONITOR_TEST_AGENT")
    with pytest.raises(ConfigError, match="environment variable MONITOR_TEST_AGENT is not set"):
        load_yaml_model(path, Settings)


# --------------------------------------------------------------------------------------------------
# Database URL


@pytest.fixture
def clean_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MONITOR_DATA_DIR or XDG_STATE_HOME, and a fake home directory."""
    monkeypatch.delenv("MONITOR_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    return home


def test_the_default_database_is_under_the_home_state_directory(clean_data_env: Path) -> None:
    url = Settings().database_url(Path("/etc/monitor"))
    assert url == f"sqlite:///{clean_data_env}/.local/state/monitor/monitor.db"


def test_xdg_state_home_moves_the_default_database(
    clean_data_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert Settings().database_url(tmp_path) == f"sqlite:///{tmp_path}/state/monitor/monitor.db"


def test_a_relative_xdg_state_home_is_ignored_as_the_spec_requires(
    clean_data_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    assert (
        Settings().database_url(tmp_path)
        == f"sqlite:///{clean_data_env}/.local/state/monitor/monitor.db"
    )


def test_monitor_data_dir_wins_over_xdg_state_home(
    clean_data_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "data"))
    assert Settings().database_url(tmp_path) == f"sqlite:///{tmp_path}/data/monitor.db"


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        pytest.param(
            "postgresql+psycopg://monitor:pw@127.0.0.1:5432/monitor",
            "postgresql+psycopg://monitor:pw@127.0.0.1:5432/monitor",
            id="postgres as configured",
        ),
        pytest.param(
            "sqlite:////var/lib/monitor.db", "sqlite:////var/lib/monitor.db", id="absolute sqlite"
        ),
        pytest.param("sqlite:///:memory:", "sqlite:///:memory:", id="in-memory sqlite"),
        pytest.param(
            "sqlite:///data/m.db", "sqlite:///{config_dir}/data/m.db", id="relative sqlite"
        ),
        pytest.param(
            "sqlite+pysqlite:///m.db?timeout=5",
            "sqlite+pysqlite:///{config_dir}/m.db?timeout=5",
            id="relative sqlite with driver and query",
        ),
    ],
)
def test_a_configured_database_is_used_with_relative_sqlite_paths_under_the_config_dir(
    clean_data_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database: str,
    expected: str,
) -> None:
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "ignored"))
    settings = Settings.model_validate({"database": database})
    assert settings.database_url(tmp_path / "etc") == expected.format(config_dir=tmp_path / "etc")


# --------------------------------------------------------------------------------------------------
# feeds.yaml and the whole configuration


def test_feed_names_come_from_the_outlet_slug_and_the_feed_name_or_position() -> None:
    config = load_config(GOOD / "full", env={})
    assert [feed.name for feed in config.feeds] == [
        "rferl",
        "meduza/1",
        "meduza/en",
        "meduza/3",
        "kyiv-independent",
    ]


def test_feeds_inherit_interval_language_and_tags_from_outlet_and_polling() -> None:
    config = load_config(GOOD / "full", env={})
    assert config.feeds == (
        FeedSpec(
            name="rferl",
            outlet="rferl",
            outlet_name="RFE/RL",
            url="https://www.rferl.org/api/zrqiteuuir",
            interval=timedelta(minutes=10),
            language="en",
            tags=("ukraine", "wire", "breaking"),
        ),
        FeedSpec(
            name="meduza/1",
            outlet="meduza",
            outlet_name="meduza",
            url="https://meduza.io/rss/all",
            interval=timedelta(hours=1, minutes=30),
            language="ru",
            tags=(),
        ),
        FeedSpec(
            name="meduza/en",
            outlet="meduza",
            outlet_name="meduza",
            url="https://meduza.io/rss/en/all",
            interval=timedelta(minutes=5),
            language="en",
            tags=(),
        ),
        FeedSpec(
            name="meduza/3",
            outlet="meduza",
            outlet_name="meduza",
            url="https://meduza.io/rss/podcasts",
            interval=timedelta(hours=1, minutes=30),
            language="ru",
            tags=(),
        ),
        FeedSpec(
            name="kyiv-independent",
            outlet="kyiv-independent",
            outlet_name="kyiv-independent",
            url="https://kyivindependent.com/news-archive/rss/",
            interval=timedelta(hours=1, minutes=30),
            language=None,
            tags=(),
        ),
    )
    assert config.config_dir == GOOD / "full"
    assert list(config.outlets.outlets) == ["rferl", "meduza", "kyiv-independent"]


def test_a_missing_feeds_yaml_is_an_error_naming_the_path(tmp_path: Path) -> None:
    _write(tmp_path, "monitor.yaml", "")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={})
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.column, issue.key_path) == (
        str(tmp_path / "feeds.yaml"),
        1,
        1,
        "(file)",
    )
    assert issue.message.startswith("file not found")


def test_issues_in_both_files_are_reported_together(tmp_path: Path) -> None:
    monitor = _write(tmp_path, "monitor.yaml", "polling:\n  jitter: 2\n")
    feeds = _write(tmp_path, "feeds.yaml", "outlets:\n  ap:\n    feeds: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={})
    assert str(caught.value).splitlines() == [
        f"{monitor}:2:11: polling.jitter: must be at most 0.5, got 2",
        f"{feeds}:3:12: outlets.ap.feeds: must not be empty",
    ]


def test_the_shipped_example_config_loads_cleanly(clean_data_env: Path) -> None:
    config = load_config(REPO / "config", env={})
    assert isinstance(config, Config)
    assert len(config.feeds) >= 5
    assert {"rferl", "ap", "presstv", "meduza", "kyiv-independent"} <= set(config.outlets.outlets)
    assert len({feed.name for feed in config.feeds}) == len(config.feeds)
    assert all(feed.url.startswith("https://") for feed in config.feeds)
    assert config.settings.database_url(config.config_dir).startswith("sqlite:///")


def test_the_shipped_monitor_yaml_spells_out_exactly_the_defaults() -> None:
    assert load_yaml_model(REPO / "config" / "monitor.yaml", Settings, env={}) == Settings()


# --------------------------------------------------------------------------------------------------
# The generic loader with another model


class _Rule(StrictModel):
    terms: tuple[str, ...]
    every: PositiveDuration | None = None


class _RulesFile(StrictModel):
    rules: dict[str, _Rule]


def test_load_yaml_model_positions_errors_for_any_strict_model(tmp_path: Path) -> None:
    text = "rules:\n  one:\n    terms: [troops, 5]\n  two:\n    term: [x]\n"
    path = _write(tmp_path, "rules.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(path, _RulesFile, env={})
    assert str(caught.value).splitlines() == [
        f"{path}:3:21: rules.one.terms[1]: expected a string, got number 5",
        f"{path}:5:5: rules.two.terms: required key is missing",
        f"{path}:5:5: rules.two.term: unknown key (did you mean 'terms'?)",
    ]
    path.write_text("rules:\n  one: {terms: [troops]}\n", encoding="utf-8")
    loaded = load_yaml_model(path, _RulesFile, env={})
    assert isinstance(loaded, _RulesFile)
    assert loaded.rules["one"].terms == ("troops",)


def _no_slack(url: str) -> str:
    if url.startswith("slack://"):
        raise ValueError(f"slack is not set up here: {url}")
    return url


class _Channel(StrictModel):
    url: Annotated[str, AfterValidator(_no_slack)]


def test_a_validator_that_quotes_its_input_still_cannot_leak_an_environment_value(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "channels.yaml", "url: slack://${SLACK_TOKEN}\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(path, _Channel, env={"SLACK_TOKEN": "T000/B000/XXXX"})
    assert str(caught.value) == f"{path}:1:6: url: slack is not set up here: slack://***"


# --------------------------------------------------------------------------------------------------
# Durations and sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations_parse_from_unit_strings_or_seconds(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["15 minutes", "", "5", "1m1h", "-5s", "1.5h", "15M"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == f"not a duration: {text!r} (use e.g. 30s, 15m, 6h, 7d)"


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=6), "6h"),
        (timedelta(days=7), "7d"),
        (timedelta(days=1, minutes=90), "1d1h30m"),
        (timedelta(0), "0s"),
        (timedelta(seconds=-60), "-1m"),
        (timedelta(seconds=1.5), "1.5s"),
    ],
)
def test_duration_text_is_the_inverse_of_the_parser(td: timedelta, text: str) -> None:
    assert duration_text(td) == text
    if td >= timedelta(0) and not td.microseconds:
        assert parse_duration(text) == td


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5MB", 5 * 1024**2),
        ("512KB", 512 * 1024),
        ("1GB", 1024**3),
        ("2MiB", 2 * 1024**2),
        ("100B", 100),
        (4096, 4096),
    ],
)
def test_sizes_parse_from_unit_strings_or_bytes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected
    assert parse_size(size_text(expected)) == expected


def test_a_bad_size_says_how_to_write_one() -> None:
    with pytest.raises(ValueError) as caught:
        parse_size("5 megabytes")
    assert (
        str(caught.value) == "not a size: '5 megabytes' (use e.g. 512KB, 5MB or a number of bytes)"
    )
