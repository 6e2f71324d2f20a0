"""Render the sample digest's email HTML to a file and, where Chromium is installed, to a PNG:
the documented check that the email looks right (not part of the test run).

Run from the repository root:

    .venv/bin/python tests/render_preview.py            # writes build/email-preview.html
    .venv/bin/python tests/render_preview.py --hostile  # the same digest with hostile headlines

If `chromium` (or `chromium-browser`, `google-chrome`) is on PATH, it then runs

    chromium --headless --disable-gpu --no-sandbox --hide-scrollbars \
        --screenshot=docs/email-preview.png --window-size=800,1200 file://…/email-preview.html

and docs/email-preview.png shows the digest as a mail client would. Without Chromium, open
build/email-preview.html in any browser. What to look at: a white 640px card on grey, the
title and "digest · 2022-01-20 10:00 EET" on top, each story's linked headline, outlets and
local time, the snippet with the terms highlighted, the watch and term chips, "… and N more";
with --hostile, `<script>`, `<!channel>` and `[click](javascript:…)` shown as text, no link
other than the stories' own."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.render import render  # noqa: E402
from monitor.render.sample import sample_message  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOSTILE = " <!channel> <script>alert(1)</script> [click](javascript:alert(1))"


def preview_html(hostile: bool) -> str:
    """The sample digest's email HTML, headlines made hostile if asked."""
    message = sample_message(shown=6)
    if hostile:
        entries = tuple(dataclasses.replace(e, title=e.title + HOSTILE) for e in message.entries)
        message = dataclasses.replace(message, entries=entries)
    html = render(message, "email").html
    assert html is not None
    return html


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostile", action="store_true", help="hostile headlines")
    parser.add_argument("--html", type=Path, default=ROOT / "build" / "email-preview.html")
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "email-preview.png")
    args = parser.parse_args()
    args.html.parent.mkdir(parents=True, exist_ok=True)
    args.html.write_text(preview_html(args.hostile), encoding="utf-8")
    print(f"wrote {args.html}")
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        print("no Chromium on PATH: open the HTML file in a browser instead")
        return 0
    args.png.parent.mkdir(parents=True, exist_ok=True)
    command = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",  # root in a container has no user namespace for Chromium's sandbox
        "--hide-scrollbars",
        f"--screenshot={args.png}",
        "--window-size=800,1200",
        args.html.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, timeout=60)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
