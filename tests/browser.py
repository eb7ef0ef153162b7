"""Shared set-up for the browser tests: Debian's chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = "/usr/bin/chromium"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@contextmanager
def allow_async_unsafe() -> Iterator[None]:
    """Let Django's ORM run in this thread while Playwright's event loop runs in it, then restore the environment.

    Playwright's sync API runs an event loop in the test's thread; Django refuses ORM calls inside one unless told.
    """
    before = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = before


@contextmanager
def chromium_browser() -> Iterator[object]:
    """Debian's chromium, headless, for as long as the block runs."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with allow_async_unsafe(), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium_page() -> Iterator[object]:
    with chromium_browser() as browser:
        yield browser.new_page()
