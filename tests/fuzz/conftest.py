"""Hypothesis profiles for the fuzz tests.

`ci` (the default) keeps the whole fuzz set within about 30 s and is derandomised, so a test run
is reproducible; `long` explores for as long as you let it:

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/fuzz

An input that once failed is kept as an explicit `@example` on its test (the regression
corpus), so it is tried on every run whatever the profile."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,  # the machine is shared: time is measured in benchmarks, not here
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=5_000,  # 1-5 minutes a test, the render tests longer
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long profile runs for minutes a test: lift the suite's 120 s timeout for it."""
    if PROFILE != "ci":
        for item in items:
            if "fuzz" in item.nodeid:
                item.add_marker(pytest.mark.timeout(0))
