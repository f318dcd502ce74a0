"""Debian's chromium driven by Playwright (no browser download), for the browser tier.
A module, not a conftest.py: tests/serve imports its own conftest by name.

``browser_page`` opens a page in a fresh headless Chromium and records every console
message and page error; tests are skipped, saying why, when Playwright or chromium is
missing (scripts/install.sh installs both where it can)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class BrowserPage:
    page: Any
    messages: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    blocked: list[str] = field(default_factory=list)  # requests that left this machine

    @property
    def problems(self) -> list[tuple[str, str]]:
        kinds = ("error", "warning", "pageerror")
        return [(kind, text) for kind, text in self.messages if kind in kinds]


LOCAL_PREFIXES = ("file:", "data:", "about:", "blob:", "http://127.0.0.1")


def _offline(route: Any, opened: BrowserPage) -> None:
    """Pages must work offline (everything inlined): block and record anything else."""
    url = route.request.url
    if url.startswith(LOCAL_PREFIXES):
        route.continue_()
    else:
        opened.blocked.append(url)
        route.abort()


@pytest.fixture
def browser_page() -> Iterator[BrowserPage]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="needs the browser extra")
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            opened = BrowserPage(page)
            page.on("console", lambda m: opened.messages.append((m.type, m.text)))
            page.on("pageerror", lambda e: opened.messages.append(("pageerror", str(e))))
            page.route("**/*", lambda route: _offline(route, opened))
            yield opened
        finally:
            browser.close()
