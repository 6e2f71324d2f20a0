"""The commands a user types: check, poll --once, articles, feeds, demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.demo.server import LoopbackServer, Route
from tests.support import Item, corpus_paragraphs, page, rss


@pytest.fixture
def site():
    with LoopbackServer() as server:
        server.routes["/a/1.html"] = Route(body=page("Blinken in Kyiv", corpus_paragraphs("001")))
        server.routes["/good.xml"] = Route(
            body=rss([Item("g1", "Blinken in Kyiv", server.url("/a/1.html"), datetime.now(UTC))]),
            etag='"1"',
        )
        server.routes["/down.xml"] = Route(status=503, body=b"maintenance")
        yield server


@pytest.fixture
def config_dir(tmp_path: Path, site: LoopbackServer) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "monitor.yaml").write_text(
        f'database: "sqlite:///{tmp_path}/monitor.db"\n'
        "polling:\n  connect_timeout: 2s\n  read_timeout: 2s\n  allow_networks: [127.0.0.0/8]\n"
        "extract:\n  workers: 1\n"
    )
    (folder / "feeds.yaml").write_text(
        "outlets:\n"
        f"  rferl:\n    name: RFE/RL\n    feeds:\n      - url: {site.url('/good.xml')}\n"
        f"  broken:\n    feeds:\n      - url: {site.url('/down.xml')}\n"
    )
    return folder


def invoke(config_dir: Path, *args: str):
    runner = CliRunner(env={"COLUMNS": "200"})  # rich sizes tables to the terminal
    return runner.invoke(main, ["-c", str(config_dir), *args], catch_exceptions=False)


def test_check_accepts_a_good_config_and_counts_it(config_dir):
    result = invoke(config_dir, "check")
    assert result.exit_code == 0
    assert "OK (2 outlets, 2 feeds)" in result.output


def test_check_rejects_a_bad_config_with_file_line_and_key_path(config_dir):
    (config_dir / "monitor.yaml").write_text("polling:\n  intervall: 5m\n")
    result = invoke(config_dir, "check")
    assert result.exit_code == 1
    assert f"{config_dir}/monitor.yaml:2:3: polling.intervall: unknown key" in result.output


def test_check_rejects_a_bad_watch_together_with_issues_in_the_other_files(config_dir):
    (config_dir / "monitor.yaml").write_text("polling:\n  intervall: 5m\n")
    (config_dir / "actors.yaml").write_text("actors:\n  russia:\n    aliases: [Russia]\n")
    (config_dir / "watches.yaml").write_text(
        "watches:\n  buildup:\n    actors: [rusia]\n    query: 'troops AND'\n"
        "    outlets: [rferl, ap]\n"
    )
    result = invoke(config_dir, "check")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{config_dir}/monitor.yaml:2:3: polling.intervall: unknown key (did you mean 'interval'?)",
        f"{config_dir}/watches.yaml:4:20: watches.buildup.query: column 8: expected a term after "
        "AND, found end of query",
        f"monitor: configuration in {config_dir} is invalid",
    ]
    (config_dir / "monitor.yaml").write_text("")
    (config_dir / "watches.yaml").write_text(
        "watches:\n  buildup:\n    actors: [rusia]\n    outlets: [rferl, ap]\n"
    )
    result = invoke(config_dir, "check")
    assert result.output.splitlines()[:2] == [
        f"{config_dir}/watches.yaml:3:14: watches.buildup.actors[0]: unknown actor 'rusia' "
        "(did you mean 'russia'?)",
        f"{config_dir}/watches.yaml:4:22: watches.buildup.outlets[1]: unknown outlet 'ap' "
        "(not in feeds.yaml)",
    ]


def test_check_counts_actors_and_watches(config_dir):
    (config_dir / "actors.yaml").write_text("actors:\n  russia:\n    aliases: [Russia]\n")
    (config_dir / "watches.yaml").write_text("watches:\n  w:\n    actors: [russia]\n")
    result = invoke(config_dir, "check")
    assert result.exit_code == 0, result.output
    assert "OK (2 outlets, 2 feeds), 1 actors, 1 watches" in result.output


def test_poll_once_prints_a_summary_and_reports_the_failing_feed(config_dir):
    result = invoke(config_dir, "poll", "--once")
    assert result.exit_code == 0, result.output
    assert (
        "feeds polled: 2, not modified: 0, new articles: 1 (backlog 0), duplicates: 0, "
        "revisions: 0, errors: 1"
    ) in result.output
    assert "error   broken: " in result.output and "HTTP 503" in result.output
    again = invoke(config_dir, "poll", "--once", "--feed", "rferl")
    assert "feeds polled: 1, not modified: 1, new articles: 0" in again.output


def test_poll_refuses_an_unknown_feed_name(config_dir):
    result = CliRunner().invoke(main, ["-c", str(config_dir), "poll", "--once", "--feed", "nope"])
    assert result.exit_code == 2 and "unknown feed nope" in result.output


def test_articles_lists_searches_and_prints_json(config_dir):
    invoke(config_dir, "poll", "--once")
    table = invoke(config_dir, "articles")
    assert "Blinken in Kyiv" in table.output and "rferl" in table.output
    lines = invoke(config_dir, "articles", "--json", "--search", "kuleba").output.splitlines()
    (record,) = [json.loads(line) for line in lines]
    assert record["title"] == "Blinken in Kyiv" and record["outlets"] == ["rferl"]
    assert "Kuleba" in record["text"]
    assert invoke(config_dir, "articles", "--json", "--search", "zzzz").output == ""


def test_stories_lists_stories_and_says_why_each_article_is_in_one(config_dir):
    invoke(config_dir, "poll", "--once")
    (article,) = [
        json.loads(line) for line in invoke(config_dir, "articles", "--json").output.splitlines()
    ]
    assert article["story"] == article["id"]
    assert article["story_reason"].startswith("new story")
    listed = [
        json.loads(line) for line in invoke(config_dir, "stories", "--json").output.splitlines()
    ]
    assert [(s["id"], s["articles"], s["outlets"]) for s in listed] == [
        (article["id"], 1, ["rferl"])
    ]
    (member,) = [
        json.loads(line)
        for line in invoke(config_dir, "stories", str(article["id"]), "--json").output.splitlines()
    ]
    assert member["title"] == "Blinken in Kyiv" and member["why"] == article["story_reason"]
    table = invoke(config_dir, "stories", str(article["id"])).output
    assert "Blinken in Kyiv" in table and "new story" in table
    missing = CliRunner().invoke(main, ["-c", str(config_dir), "stories", "999"])
    assert missing.exit_code == 1 and "no story 999" in missing.output


def test_feeds_shows_each_feeds_health_with_the_error(config_dir):
    invoke(config_dir, "poll", "--once")
    result = invoke(config_dir, "feeds", "--json")
    health = {h["name"]: h for h in map(json.loads, result.output.splitlines())}
    assert health["broken"]["consecutive_failures"] == 1
    assert "HTTP 503" in health["broken"]["last_error"]
    assert health["rferl"]["consecutive_failures"] == 0 and health["rferl"]["articles"] == 1
    table = invoke(config_dir, "feeds")
    assert "failing" in table.output and "HTTP 503" in table.output


def test_poll_once_polls_every_feed_whatever_the_batch_size(config_dir):
    text = (config_dir / "monitor.yaml").read_text()
    (config_dir / "monitor.yaml").write_text(text.replace("polling:\n", "polling:\n  batch: 1\n"))
    result = invoke(config_dir, "poll", "--once")
    assert "feeds polled: 2," in result.output


def test_feeds_with_another_config_does_not_retire_the_running_daemons_feeds(config_dir, tmp_path):
    invoke(config_dir, "poll", "--once")
    other = tmp_path / "other"
    other.mkdir()
    (other / "monitor.yaml").write_text((config_dir / "monitor.yaml").read_text())
    (other / "feeds.yaml").write_text(
        "outlets:\n  other:\n    feeds:\n      - url: http://127.0.0.1:9/x.xml\n"
    )
    invoke(other, "feeds")
    health = {
        h["name"]: h
        for h in map(json.loads, invoke(config_dir, "feeds", "--json").output.splitlines())
    }
    assert health["rferl"]["active"] and health["broken"]["active"]


def test_articles_names_an_unknown_outlet(config_dir):
    result = CliRunner().invoke(main, ["-c", str(config_dir), "articles", "--outlet", "nope"])
    assert result.exit_code == 2 and "no outlet 'nope' in feeds.yaml" in result.output
