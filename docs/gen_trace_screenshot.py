"""Screenshot of a trace page for the docs (docs/guide/img/trace.png).

Usage, from the repository root (needs the explain and browser extras and Debian's
chromium)::

    primflow explain naive_rag --docs samples/docs \\
        --question "How many days of paid annual leave do employees get?" \\
        --max-tokens 24 --html trace.html
    python docs/gen_trace_screenshot.py trace.html

The page loads offline (plotly is inlined); the screenshot is its first screen.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "guide" / "img" / "trace.png"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def main(page_path: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(Path(page_path).resolve().as_uri())
        page.wait_for_selector("#gantt .barlayer g.point")
        OUT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUT))
        browser.close()
    print(f"wrote {OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
