"""/dashboard in real headless Chromium (Debian's), driven by Playwright, against a real server.

Needs `apt-get install chromium` (/usr/bin/chromium) and the `playwright` Python package (its own
driver; no browser download). A screenshot of the campaign page lands in test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import CHROMIUM_ARGS, WAIT_MS, Site, now, sign_in, wait_for_values
from tests.factories import add_contacts, create_campaign, ended_call, phones, started_call
from tests.servers import server_env, start_server
from tests.stream.helpers import new_key
from tests.tools import needs_chromium

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = needs_chromium
playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright Python package")


@pytest.fixture
def site(sqlite_template: Path, tmp_path: Path) -> Iterator[Site]:
    """A server on a fresh SQLite file, a campaign of 4 contacts with one call answered."""
    path = tmp_path / "dashboard.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    env = server_env(url, stream_heartbeat_seconds="1")
    key = new_key(url)
    server = start_server(env, tmp_path)
    made = Site(server, env, key, "", phones(4), tmp_path)
    try:
        with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
            made.campaign_id = create_campaign(http, server.base_url, "Browser <b>campaign</b>")
            add_contacts(http, server.base_url, made.campaign_id, made.phones)
        made.post(started(made, 0, "b0"), ended(made, 0, "b0", "answered", 95))
        yield made
    finally:
        made.server.stop()


@pytest.fixture
async def page(site: Site) -> AsyncIterator[Any]:
    """A Chromium page that records console errors, page errors and every requested URL."""
    async with playwright_api.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        tab = await browser.new_page(viewport={"width": 1280, "height": 1500})
        tab.problems = []
        tab.requested = []
        tab.on("console", lambda m: m.type == "error" and tab.problems.append(m.text))
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))
        tab.on("request", lambda r: tab.requested.append(r.url))
        tab.set_default_timeout(WAIT_MS)
        try:
            yield tab
        finally:
            await browser.close()


def started(site: Site, contact: int, call_id: str) -> dict[str, Any]:
    """A call.started event happening now (so the time-series chart shows the current minute)."""
    return started_call(site.campaign_id, site.phones[contact], call_id, at=now())


def ended(site: Site, contact: int, call_id: str, outcome: str, seconds: int = 0) -> dict[str, Any]:
    """A call.ended event happening now."""
    return ended_call(site.campaign_id, site.phones[contact], call_id, outcome, seconds, at=now())


async def test_wrong_key_shows_a_clear_message(page: Any, site: Site) -> None:
    """A key the server refuses: the form says so, and nothing is stored."""
    await page.goto(f"{site.base_url}/dashboard")
    await sign_in(page, site, "cs_not_a_real_key")
    error = page.locator("#signin-error")
    await error.wait_for(state="visible")
    assert "not accepted" in await error.inner_text()
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.locator("#list-view").is_hidden()


async def test_live_campaign_page(page: Any, site: Site) -> None:
    """Sign in, open the campaign, see the API's numbers, then see events arrive without a reload."""
    await page.goto(f"{site.base_url}/dashboard")
    await sign_in(page, site, site.key)
    row = page.locator(f'tr[data-campaign-id="{site.campaign_id}"]')
    await row.locator('[data-cell="contacts"]', has_text="1 / 4").wait_for()
    assert await row.locator("a").inner_text() == "Browser <b>campaign</b>"  # shown as text, never as HTML
    await row.locator("a").click()
    await page.locator("#connection", has_text="Live").wait_for()
    stats = await wait_for_values(page, site)
    assert await page.inner_text("#campaign-name") == "Browser <b>campaign</b>"
    assert await page.get_attribute("#progress", "aria-valuenow") == "25.0"

    await page.evaluate("window.notReloaded = true")
    site.post(started(site, 1, "b1"), ended(site, 1, "b1", "busy"), started(site, 2, "b2"))
    stats = await wait_for_values(page, site)
    assert (stats["calls_in_progress"], stats["call_status_breakdown"]["busy"]) == (1, 1)
    site.post(ended(site, 2, "b2", "answered", 200))
    stats = await wait_for_values(page, site)
    assert stats["calls_completed"] == 2
    assert await page.evaluate("window.notReloaded") is True
    assert await page.get_attribute("#progress", "aria-valuenow") == "50.0"
    await page.locator("#durations-note", has_text="over 2 answered calls").wait_for()
    await page.locator("#activity-note", has_text="getCampaignTimeseries").wait_for()

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-campaign.png"), full_page=True)
    assert not [p for p in page.problems if not p.startswith("Failed to load resource")], page.problems
    assert not any(site.key in url for url in page.requested), "the key went into a URL"
    assert site.key not in page.url


async def test_says_disconnected_and_recovers(page: Any, site: Site) -> None:
    """The server goes away: the page says it is disconnected; it comes back: live again, numbers current."""
    await page.goto(f"{site.base_url}/dashboard")
    await sign_in(page, site, site.key)
    await page.goto(f"{site.base_url}/dashboard#/campaign/{site.campaign_id}")
    await page.locator("#connection", has_text="Live").wait_for()
    await wait_for_values(page, site)

    site.server.kill()
    badge = page.locator("#connection.disconnected")
    await badge.wait_for()
    assert re.search(
        r"Disconnected: cannot reach the server\. Numbers shown are from .*\. Retrying",
        await badge.inner_text(),
    )

    site.restart()
    site.post(started(site, 3, "b3"))
    await page.locator("#connection", has_text="Live").wait_for(timeout=45_000)
    stats = await wait_for_values(page, site)
    assert stats["calls_in_progress"] == 1
    await page.click("#sign-out")
    await page.locator("#signin-view").wait_for()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_served_from_the_package_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    """The page, its script and Chart.js (with its licence) come from the package, under a strict CSP."""
    page = await client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "unsafe" not in policy
    for name in ("dashboard.js", "dashboard.css", "vendor/chart.umd.min.js", "vendor/chart.js.LICENSE.md"):
        assert (await client.get(f"/dashboard/static/{name}")).status_code == 200, name
    missing = await client.get("/dashboard/static/../../app.py")
    assert missing.status_code == 404 and missing.json()["error"] == "NOT_FOUND"
