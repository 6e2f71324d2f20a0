"""Re-running some benchmarks rewrites their rows in docs/benchmarks.md and keeps the others',
dated by the run that measured them."""

from __future__ import annotations

from tests.benchmarks.__main__ import _earlier, render

DOC = """# Benchmarks

- **Date:** 2026-11-24 10:02 UTC
- **Code:** cc86768

## Figures against targets

| benchmark | figure | value | target | met |
|---|---|---:|---|:---:|
| Watch matching | growth | 4.63 x | <= 3 x | **NO** |
| Near-duplicate lookup | SQLite, 1,000,000 | 0.51 ms | < 1 ms | yes |

## Method

### Watch matching

old matching notes

### Near-duplicate lookup

lookup notes
"""

NEW = {
    "name": "matching",
    "title": "Watch matching",
    "command": "python -m tests.benchmarks.matching",
    "seconds": 20.0,
    "rows": [{"figure": "growth", "value": 2.9, "unit": "x", "target": "<= 3 x", "met": True}],
    "notes": ["new matching notes"],
}


def test_a_partial_run_replaces_its_own_rows_and_keeps_the_others_dated():
    earlier = _earlier(DOC, {"Watch matching"})
    doc = render([NEW], "python -m tests.benchmarks matching", "0.5", 30.0, earlier)
    assert "| Watch matching | growth | 2.90 x | <= 3 x | yes |" in doc
    assert "4.63" not in doc and "old matching notes" not in doc
    assert "| Near-duplicate lookup | SQLite, 1,000,000 | 0.51 ms | < 1 ms | yes |" in doc
    assert "lookup notes" in doc
    assert "(measured in the earlier run of 2026-11-24 10:02 UTC, code cc86768)" in doc
    assert "the rows of Near-duplicate lookup are from the earlier run of 2026-11-24" in doc
