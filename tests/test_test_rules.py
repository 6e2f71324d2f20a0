"""`monitor test-rules`: replay watches against the store, one page or a file, with --explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.demo.server import LoopbackServer, Route
from tests import test_cli
from tests.support import CORPUS, page
from tests.test_cli import invoke

# the command tests' loopback site and config directory
site = test_cli.site
config_dir = test_cli.config_dir

ACTORS = """\
actors:
  russia:
    aliases: [Russia, Russian, Moscow, Kremlin]
  lavrov:
    aliases: [Lavrov, Sergei Lavrov, Sergey Lavrov]
  blinken:
    aliases: [Blinken, Antony Blinken]
"""

WATCHES = """\
watches:
  troops:
    actors: [russia]
    keywords: [troops]
    near: sentence
  talks:
    query: '@lavrov NEAR/sentence @blinken'
  sport:
    keywords: [football]
"""


@pytest.fixture
def rules_dir(config_dir: Path) -> Path:
    (config_dir / "actors.yaml").write_text(ACTORS)
    (config_dir / "watches.yaml").write_text(WATCHES)
    return config_dir


def corpus_file(number: str) -> Path:
    (path,) = CORPUS.glob(f"{number}_*.txt")
    return path


def test_a_text_file_shows_each_matching_watch_its_terms_and_snippet(rules_dir):
    result = invoke(rules_dir, "test-rules", "--file", str(corpus_file("003")))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "✓ troops" in out and "✓ talks" in out and "sport" not in out
    assert "@lavrov (Sergei Lavrov, Lavrov) ×" in out
    assert "@blinken (Blinken, Antony Blinken" in out


def test_explain_says_why_a_watch_did_not_match(rules_dir):
    result = invoke(
        rules_dir, "test-rules", "--file", str(corpus_file("003")), "--watch", "sport", "--explain"
    )
    assert result.exit_code == 0, result.output
    assert "✗ sport: the rule is not satisfied" in result.output
    assert "✗ football: not found" in result.output


def test_explain_shows_the_pair_that_satisfied_a_proximity_clause(rules_dir):
    result = invoke(
        rules_dir, "test-rules", "--file", str(corpus_file("003")), "-w", "talks", "--explain"
    )
    assert "✓ talks: matched with score" in result.output
    assert "✓ @lavrov within the same sentence of @blinken: " in result.output


def test_a_page_is_fetched_and_extracted_before_matching(rules_dir):
    with LoopbackServer() as server:
        story = ["Russia moved more troops to the border on Tuesday, officials said. " * 4]
        server.routes["/story.html"] = Route(body=page("Troops on the move", story))
        result = invoke(rules_dir, "test-rules", "--url", server.url("/story.html"))
    assert result.exit_code == 0, result.output
    assert "Troops on the move" in result.output and "✓ troops" in result.output


def test_a_page_that_cannot_be_fetched_is_named_in_the_error(rules_dir):
    with LoopbackServer() as server:
        server.routes["/gone.html"] = Route(status=404, body=b"gone")
        result = invoke(rules_dir, "test-rules", "--url", server.url("/gone.html"))
    assert result.exit_code == 1
    assert server.url("/gone.html") in result.output and "404" in result.output


def test_replaying_the_store_counts_matches_per_watch(rules_dir):
    assert invoke(rules_dir, "poll", "--once").exit_code == 0  # stores the site's article
    result = invoke(rules_dir, "test-rules", "--since", "all")
    assert result.exit_code == 0, result.output
    assert "1 articles replayed" in result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in _rows(result.output)}
    assert rows == {"troops": "1", "talks": "0", "sport": "0"}
    assert "Blinken in Kyiv" in result.output  # the matching article is shown


def test_an_article_id_replays_that_article_only(rules_dir):
    invoke(rules_dir, "poll", "--once")
    result = invoke(rules_dir, "test-rules", "--article", "1", "--explain", "-w", "talks")
    assert result.exit_code == 0, result.output
    assert "article 1" in result.output and "✗ talks" in result.output
    missing = invoke(rules_dir, "test-rules", "--article", "99")
    assert missing.exit_code == 2 and "no stored article with id 99" in missing.output


def test_an_unknown_watch_is_a_usage_error_listing_the_watches(rules_dir):
    result = invoke(rules_dir, "test-rules", "--watch", "troop")
    assert result.exit_code == 2
    assert "no watch troop (watches: troops, talks, sport)" in result.output


def test_invalid_rules_are_reported_with_file_and_line(rules_dir):
    (rules_dir / "watches.yaml").write_text("watches:\n  bad:\n    query: 'troops AND'\n")
    result = invoke(rules_dir, "test-rules", "--since", "all")
    assert result.exit_code == 1
    assert f"{rules_dir}/watches.yaml:3:" in result.output


def _rows(output: str) -> list[str]:
    """The body rows of the counts table (rich draws it with │ separators)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "articles replayed" in line)
    return [
        line
        for line in lines[start:]
        if line.count("│") == 3 and "watch" not in line and "articles matched" not in line
    ]
