"""Headless Chromium (Debian's package, installed by ``scripts/bootstrap --test``) driven by
Playwright. Playwright never downloads a browser here: the system one is launched with the
flags that keep it off the network. Missing Chromium fails the tests with what to do, unless
``QORGAU_SKIP_BROWSER=1`` says to skip them."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

# Headless, and nothing that would reach out to Google's servers from a closed network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_path() -> str:
    if os.environ.get("QORGAU_SKIP_BROWSER") == "1":
        pytest.skip("browser tests skipped: QORGAU_SKIP_BROWSER=1")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not installed: run scripts/bootstrap --test (it installs Debian's "
            "chromium), or set QORGAU_SKIP_BROWSER=1 to skip the browser tests",
            pytrace=False,
        )
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        # launch() gives every run a fresh temporary profile (user-data dir) of its own.
        found = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield found
        finally:
            await found.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def shots(artifacts: Path) -> Path:
    """Where the screenshots are kept (git-ignored)."""
    folder = artifacts / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder
