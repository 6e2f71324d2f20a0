"""Run every benchmark (each in its own process) and rewrite docs/benchmarks.md.

    .venv/bin/python -m tests.benchmarks                 # all of them
    .venv/bin/python -m tests.benchmarks extraction      # a subset: its rows and method are
                                                         # replaced, the others' kept (and dated)
    .venv/bin/python -m tests.benchmarks --quick         # smaller runs, for trying it out

Each benchmark is also a script of its own: python -m tests.benchmarks.<name>.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.common import fmt, machine

BENCHMARKS = ("poll_cycle", "extraction", "daemon_memory", "matching", "delivery", "neardup")
TIMEOUTS = {"neardup": 1800}  # seconds; filling 1,000,000 fingerprints twice takes minutes
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"

METHOD = {
    "poll_cycle": (
        "The real `poll_cycle` (the pipeline `monitor poll --once` runs) with the daemon's "
        "`fetch_limits` and its 2-process extractor pool, against a server farm in a separate "
        "process: one `LoopbackServer` per loopback address, each adding 100 ms before every "
        "response. Wall time is `poll_cycle` alone (claiming included); bytes are counted by the "
        "servers as written to the socket."
    ),
    "extraction": (
        "Pages from `monitor.demo.site`, passed as bytes as the fetcher returns them. All four "
        "variants run in the same process tree, in interleaved rounds, so a background load "
        "affects them alike; the speed-up is a ratio measured within each round."
    ),
    "daemon_memory": (
        "A real `monitor run` subprocess with its default pool. The benchmark samples "
        "/proc/PID/status (VmRSS, VmHWM) and /proc/PID/smaps_rollup (Pss) of the daemon and "
        "all its descendants every 0.5 s, and counts the articles in the SQLite file read-only. "
        "It sends SIGTERM once all articles are stored."
    ),
    "matching": (
        "Pure CPU, one process: `compile_rules` and `match(rules, Document)` from "
        "`monitor.rules`, on watches generated with a fixed seed from the term lists in "
        "`tests/benchmarks/data/` and parsed with `parse_query`, over 1,000-word articles made "
        "of the corpus stories' paragraphs. The sizes are timed in interleaved rounds; the "
        "naive regex loop runs in the same process right after, on the first articles, and the "
        "speed-up compares the two on the same articles."
    ),
    "delivery": (
        "One process. Rendering: `render(message, fmt)` from `monitor.render` with the shipped "
        "templates and default limits (and `email_message` for email), on digests built from "
        "the sample entries; the formats are timed in interleaved rounds. Sending: the real "
        "`send_due` and `monitor.notify.send` (apprise's `json://`) against a `LoopbackServer` "
        "webhook in the same process, on a fresh SQLite store and a throw-away PostgreSQL "
        "database. Planning: delivery ticks with 2,000 routes on both databases, each timed "
        "around `plan_all` (every route) and the daemon's `monitor.dispatch.Planner` (quiet, "
        "seeing new matches on 5 routes, queueing their alerts, and its sweep of every route), "
        "with the SQL statements each sends counted; the queued alerts are checked. No targets "
        "are set for these figures."
    ),
    "neardup": (
        "One process. First the labelled set of `tests/neardup` (`python -m "
        "tests.neardup.evaluate --compare`): every pair of its texts decided as the store "
        "decides (a shared band key, then the estimated Jaccard at or above the threshold), "
        "and the alternative schemes measured on the same pairs. Then lookups through "
        "`monitor.store.fingerprints.near_duplicates` on a SQLite file and a throw-away "
        "PostgreSQL database, filled to 10,000, 100,000 and 1,000,000 articles with random "
        "sketches by bulk inserts, against a linear scan of every stored sketch in the same run."
    ),
}


def run(name: str, quick: bool) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        cmd = [sys.executable, "-m", f"tests.benchmarks.{name}", "--json", str(out)]
        if quick:
            cmd.append("--quick")
        print(f"== {' '.join(cmd[1:4])}", flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, timeout=TIMEOUTS.get(name, 900))
        if proc.returncode != 0 or not out.exists():
            print(f"!! {name} failed (exit {proc.returncode})", flush=True)
            return None
        return json.loads(out.read_text())


def _git_says(*args: str) -> str:
    run = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return run.stdout.strip()


def _git() -> str:
    try:
        rev = _git_says("rev-parse", "--short", "HEAD")
        dirty = _git_says("status", "--porcelain", "monitor")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}{' with uncommitted changes under monitor/' if dirty else ''}"


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _earlier(doc: str, titles: set[str]) -> tuple[list[str], list[str], str]:
    """From an earlier docs/benchmarks.md: its table rows and method sections for benchmarks
    other than `titles` (those not run now), and when and on what code they were measured."""
    date = re.search(r"^- \*\*Date:\*\* (.+)$", doc, re.M)
    code = re.search(r"^- \*\*Code:\*\* (.+)$", doc, re.M)
    when = f"{date.group(1) if date else '?'}, code {code.group(1) if code else '?'}"
    rows = [
        line
        for line in doc.splitlines()
        if line.startswith("| ")
        and not line.startswith("| benchmark |")
        and line.split(" | ")[0][2:] not in titles
    ]
    method = doc.split("\n## Method\n", 1)[1] if "\n## Method\n" in doc else ""
    sections = [
        "### " + part.rstrip() + "\n"
        for part in method.split("\n### ")[1:]
        if part.split("\n", 1)[0].strip() not in titles
    ]
    return rows, sections, when


def render(
    results: list[dict],
    command: str,
    started_load: str,
    seconds: float,
    earlier: tuple[list[str], list[str], str] | None = None,
) -> str:
    m = machine()
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m tests.benchmarks` (do not edit by hand; re-run it instead).",
        "",
        f"- **Date:** {m['date']}",
        f"- **Command:** `{command}` ({seconds / 60:.1f} min)",
        f"- **Machine:** {m['nproc']} CPUs ({m['cpu']}), {m['memory']}, {m['platform']}",
        f"- **Python:** {m['python']}",
        f"- **Code:** {_git()}",
        f"- **Load average when it started:** {started_load} (a busy machine slows every "
        "figure; the ratios, measured within one run, are the reliable part)",
    ]
    if earlier and earlier[0]:
        lines.append(
            f"- **Not re-run:** the rows of {', '.join(sorted(_titles(earlier[0])))} are from "
            f"the earlier run of {earlier[2]}"
        )
    lines += [
        "",
        "## Figures against targets",
        "",
        "| benchmark | figure | value | target | met |",
        "|---|---|---:|---|:---:|",
    ]
    for r in results:
        for row in r["rows"]:
            value = f"{fmt(row['value'])} {row['unit']}".strip()
            met = "" if row["met"] is None else ("yes" if row["met"] else "**NO**")
            lines.append(
                f"| {r['title']} | {row['figure']} | {value} | {row['target'] or ''} | {met} |"
            )
    if earlier:
        lines += earlier[0]
    lines += ["", "## Method", ""]
    for r in results:
        lines += [
            f"### {r['title']}",
            "",
            f"`{r['command']}` ({r['seconds']:.0f} s)",
            "",
            METHOD.get(r["name"], ""),
        ]
        lines += [""] + [f"- {note}" for note in r["notes"]] + [""]
    if earlier:
        for section in earlier[1]:
            lines += [section.rstrip(), f"- (measured in the earlier run of {earlier[2]})", ""]
    return "\n".join(lines)


def _titles(rows: list[str]) -> set[str]:
    return {row.split(" | ")[0][2:] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks")
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"a subset of: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    load = _load()
    started = time.monotonic()
    results = [r for r in (run(n, args.quick) for n in names) if r is not None]
    command = " ".join(
        [".venv/bin/python -m tests.benchmarks", *args.names, *(["--quick"] if args.quick else [])]
    )
    earlier = None
    if args.names and DOC.exists():  # a subset: keep what the others measured last time
        earlier = _earlier(DOC.read_text(), {r["title"] for r in results})
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(results, command, load, time.monotonic() - started, earlier))
    print(f"wrote {DOC.relative_to(ROOT)}")
    if len(results) < len(names):
        sys.exit(1)


if __name__ == "__main__":
    main()
