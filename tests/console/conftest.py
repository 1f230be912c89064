"""Fixtures for the console tests: Debian's Chromium driven through Playwright."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.app import Gateway
from tests.console.harness import (
    CHROMIUM_ARGS,
    MISSING_CHROMIUM,
    MISSING_PLAYWRIGHT,
    VIEWPORT,
    Console,
    find_chromium,
)
from tests.integration.helpers import base_url

if TYPE_CHECKING:
    from playwright.async_api import Browser


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; the browser tests fail (never skip) without it or without Playwright."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.fail(MISSING_PLAYWRIGHT)
    path = find_chromium()
    if path is None:
        pytest.fail(MISSING_CHROMIUM)
    return path


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """A headless Chromium for one test, on the test's own event loop."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def console(
    browser: Browser, running_gateway: Gateway, tmp_path: Path
) -> AsyncIterator[Console]:
    """A tab on the running gateway's console; the test fails on any script or CSP error."""
    context = await browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    page = await context.new_page()
    page.set_default_timeout(15_000)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    tab = Console(page=page, base_url=base_url(running_gateway), shots=shots)
    tab.watch()
    try:
        yield tab
    finally:
        await context.close()
    assert tab.page_errors == [], "the console raised script errors"
    assert tab.csp_violations == [], "the console broke its Content-Security-Policy"
