"""/docs (Swagger UI) and /redoc (ReDoc) in real headless Chromium with the network off.

Every request the page makes to anything but the server under test (loopback) is aborted and
recorded, so a page that still needed a CDN would stay blank and the test would name the URL it
wanted. The pages must render the API's operations from the package's own files.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser import CHROMIUM_ARGS, WAIT_MS
from tests.servers import ServerProcess, server_env, start_server
from tests.tools import CHROMIUM, needs_chromium

pytestmark = needs_chromium
playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright Python package")

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.fixture
def server(sqlite_template: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """A `callstats serve` on a fresh SQLite file."""
    path = tmp_path / "docs.db"
    shutil.copy(sqlite_template, path)
    running = start_server(server_env(f"sqlite:///{path}"), tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def offline_page(server: ServerProcess) -> AsyncIterator[Any]:
    """A Chromium page whose requests off loopback are aborted (and listed in `page.blocked`)."""
    async with playwright_api.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 1200})
        blocked: list[str] = []
        served: list[str] = []

        async def loopback_only(route: Any) -> None:
            url = route.request.url
            if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname in LOOPBACK:
                served.append(url)
                await route.continue_()
            elif url.startswith(("data:", "blob:")):
                await route.continue_()
            else:
                blocked.append(url)
                await route.abort("internetdisconnected")

        await context.route("**/*", loopback_only)
        tab = await context.new_page()
        tab.blocked, tab.served, tab.problems = blocked, served, []
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))
        tab.on(
            "console", lambda m: m.type == "error" and not _redoc_logo(m.text) and tab.problems.append(m.text)
        )
        tab.set_default_timeout(WAIT_MS)
        try:
            yield tab
        finally:
            await browser.close()


def _redoc_logo(message: str) -> bool:
    """ReDoc's footer logo, which it always asks of its CDN: the page's CSP refuses it (so it is never
    requested, and ReDoc hides the image); the browser logs that refusal as a console error."""
    return "Content Security Policy" in message and "cdn.redoc.ly/redoc/logo-mini.svg" in message


async def test_swagger_ui_renders_offline(offline_page: Any, server: ServerProcess) -> None:
    """/docs shows every operation (getCampaignStats included) and the Authorize button, no CDN asked."""
    page = offline_page
    await page.goto(f"{server.base_url}/docs")
    await page.locator("#operations-stats-getCampaignStats").wait_for()
    assert (
        "/getCampaignStats/{campaignId}"
        in await page.locator("#operations-stats-getCampaignStats").inner_text()
    )
    assert await page.locator("#operations-calls-recordCallEvents").count() == 1
    await page.locator("button.authorize").first.click()
    dialog = page.locator(".dialog-ux")
    await dialog.wait_for()
    assert "x-api-key" in await dialog.inner_text()
    assert page.blocked == [], page.blocked
    assert any(url.endswith("/docs/static/swagger-ui-bundle.js") for url in page.served), page.served
    assert page.problems == [], page.problems


async def test_redoc_renders_offline(offline_page: Any, server: ServerProcess) -> None:
    """/redoc shows the API's title and the stats operation, no CDN or web font asked."""
    page = offline_page
    await page.goto(f"{server.base_url}/redoc")
    await page.locator("h1", has_text="callstats").wait_for()
    await page.locator("h2", has_text="Get Campaign Stats").wait_for()
    assert page.blocked == [], page.blocked
    assert any(url.endswith("/docs/static/redoc.standalone.js") for url in page.served), page.served
    assert page.problems == [], page.problems
