"""Debian's chromium (scripts/install-chromium.sh) driven by Playwright, which never downloads a browser of
its own; each page test leaves screenshots in tests/screenshots/ for a person to look at."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.services import REPO

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "tests" / "screenshots"


@contextmanager
def chromium(*args: str) -> Iterator:
    """A headless chromium (with command-line `args`); without one the test skips, except under CI=true,
    where it fails (CI must run the browser tests, never pass without them)."""
    if not os.path.exists(CHROMIUM):
        message = f"no {CHROMIUM}: run scripts/install-chromium.sh as root (Debian's chromium package)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(args))
        yield browser
        browser.close()
