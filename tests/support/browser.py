"""Debian's chromium (scripts/install-chromium.sh) driven by Playwright, which never downloads a browser of
its own; each page test leaves screenshots in tests/screenshots/ for a person to look at."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.needed import needed
from tests.support.services import REPO

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "tests" / "screenshots"
TIMEOUT_MS = 60_000  # one photo through dlib on a busy two-core machine takes seconds, not a minute


@contextmanager
def chromium(*args: str) -> Iterator:
    """A headless chromium (with command-line `args`); without one the test skips, except under CI=true,
    where it fails (CI must run the browser tests, never pass without them)."""
    if not os.path.exists(CHROMIUM):
        needed(f"no {CHROMIUM}: run scripts/install-chromium.sh as root (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(args))
        yield browser
        browser.close()


@contextmanager
def opened(browser: Any, url: str) -> Iterator[Any]:
    """A page of `url` in `browser`, closed after."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    try:
        yield page
    finally:
        page.close()


def screenshot(page: Any, name: str) -> None:
    """The whole page as tests/screenshots/<name>.png, for a person to look at."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
