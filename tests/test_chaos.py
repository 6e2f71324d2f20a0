"""The short chaos run (issue 7): `monitor run` SIGKILLed ten times at random moments while it
ingests, matches and delivers to a webhook and a real SMTP server. The full run with 50 kills is
`python -m tests.chaos --kills 50` (see tests/chaos.py and docs/reliability.md)."""

from __future__ import annotations

from tests import chaos


def test_random_sigkills_lose_nothing_and_tell_no_story_twice(tmp_path):
    report = chaos.run(tmp_path, kills=10, seed=7)
    print("\n".join(report.lines()))
    assert sum(report.kills.values()) == 10
    assert report.want and report.served >= 24  # there was something to lose
    assert report.problems() == []
