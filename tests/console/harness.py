"""Driving the operator console in a real headless Chromium (through Playwright).

Playwright is used only as a driver for Debian's own Chromium: ``playwright install`` is never
run (it would download a browser). The binary is found on the PATH (``chromium``,
``chromium-browser``) or named by ``ASW_CHROMIUM``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Error, Page, ViewportSize

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
MISSING_CHROMIUM = (
    "Chromium is not installed, and the console tests drive a real headless browser. "
    "Install it with `apt-get install chromium` (Debian; `make test` does this), or set "
    "ASW_CHROMIUM to a Chromium or Chrome binary."
)
MISSING_PLAYWRIGHT = (
    "The Python package playwright is not installed; the console tests use it to drive "
    "Chromium. Install the dev extra (`pip install -e '.[dev]'`). Do not run `playwright "
    "install`: the tests use Debian's chromium."
)
VIEWPORT: ViewportSize = {"width": 1280, "height": 860}


def find_chromium() -> str | None:
    """The Chromium binary to drive, or None when there is none."""
    named = os.environ.get("ASW_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Console:
    """One browser tab on a running gateway's console, with what went wrong in the page."""

    page: Page
    base_url: str
    shots: Path
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def watch(self) -> None:
        """Record uncaught script errors and Content-Security-Policy violations."""

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" and "Content Security Policy" in message.text:
                self.csp_violations.append(message.text)

        def on_page_error(error: Error) -> None:
            self.page_errors.append(f"{error.name}: {error.message}")

        self.page.on("console", on_console)
        self.page.on("pageerror", on_page_error)

    async def open(self, fragment: str = "#/overview") -> None:
        """Load the console at ``fragment`` and wait for the view's heading."""
        await self.page.goto(f"{self.base_url}/console{fragment}")
        await self.page.locator("main h1").first.wait_for()

    async def go(self, fragment: str) -> None:
        """Change view inside the loaded console, as a link would."""
        await self.page.evaluate("(hash) => { window.location.hash = hash; }", fragment)
        await self.page.locator("main h1").first.wait_for()

    async def shot(self, name: str) -> Path:
        """A full-page PNG of the current view in the test's directory (and ASW_CONSOLE_SHOTS)."""
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        extra = os.environ.get("ASW_CONSOLE_SHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(extra) / path.name)
        return path

    async def focused(self) -> str:
        """A short description of the focused element: tag, classes and text."""
        description: str = await self.page.evaluate(
            """() => {
              const el = document.activeElement;
              if (!el) return "";
              const text = (el.getAttribute("aria-label") || el.textContent || "").trim();
              return `${el.tagName.toLowerCase()}.${el.className}|${text.slice(0, 80)}`;
            }"""
        )
        return description

    async def unnamed_controls(self) -> list[str]:
        """Links, buttons and form controls on the page that have no accessible name."""
        unnamed: list[str] = await self.page.evaluate(
            """() => [...document.querySelectorAll("a[href], button, input, select, textarea")]
              .filter((el) => !el.closest("[hidden]"))
              .filter((el) => {
                if (el.getAttribute("aria-label")) return false;
                if (el.labels && el.labels.length) return false;
                return !(el.textContent || "").trim();
              })
              .map((el) => el.outerHTML.slice(0, 120))"""
        )
        return unnamed
