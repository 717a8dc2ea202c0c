"""/dashboard in real headless Chromium (Debian's), driven by Playwright, against a real server.

Needs `apt-get install chromium` (/usr/bin/chromium) and the `playwright` Python package (its own
driver; no browser download). A screenshot of the campaign page lands in test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.seed import SEED_FIELDS
from tests.stream.helpers import ended_call, new_key, post_events, started_call
from tests.test_scale_out import (
    ServerProcess,
    add_contacts,
    create_campaign,
    phones,
    server_env,
    start_server,
)
from tests.tools import needs_chromium

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000
FIELDS = tuple(SEED_FIELDS[2:10] + SEED_FIELDS[11:])  # every figure the page shows as text

pytestmark = needs_chromium
playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright Python package")


@dataclass
class Site:
    """A running server with a campaign: what the browser talks to."""

    server: ServerProcess
    env: dict[str, str]
    key: str
    campaign_id: str
    phones: list[str]
    log_dir: Path

    @property
    def base_url(self) -> str:
        """The server's URL."""
        return self.server.base_url

    def stats(self) -> dict[str, Any]:
        """getCampaignStats' data, read through the API."""
        response = httpx.get(
            f"{self.base_url}/getCampaignStats/{self.campaign_id}",
            headers={"x-api-key": self.key},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def post(self, *events: dict[str, Any]) -> None:
        """recordCallEvents through the API."""
        with httpx.Client(headers={"x-api-key": self.key}, timeout=30) as http:
            post_events(http, self.base_url, *events)

    def restart(self) -> None:
        """Start a new server on the same port (after `server.kill()`)."""
        self.server = start_server(self.env, self.log_dir, port=self.server.port)


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


async def shown_values(page: Any) -> dict[str, str]:
    """The raw value behind each number on the campaign page (data-value attributes)."""
    values: dict[str, str] = await page.eval_on_selector_all(
        "#campaign-view [data-field], #campaign-view [data-breakdown]",
        VALUES_JS,
    )
    return values


VALUES_JS = """els => Object.fromEntries(
    els.map(e => [e.dataset.field || 'bd_' + e.dataset.breakdown, e.dataset.value])
)"""


def started(site: Site, contact: int, call_id: str) -> dict[str, Any]:
    """A call.started event happening now (so the time-series chart shows the current minute)."""
    return started_call(site.campaign_id, site.phones[contact], call_id, at=_now())


def ended(site: Site, contact: int, call_id: str, outcome: str, seconds: int = 0) -> dict[str, Any]:
    """A call.ended event happening now."""
    return ended_call(site.campaign_id, site.phones[contact], call_id, outcome, seconds, at=_now())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def expected_values(stats: dict[str, Any]) -> dict[str, str]:
    """What shown_values must be for these stats (JavaScript's String() of each value)."""
    expected = {name: _js_string(stats[name]) for name in FIELDS}
    expected.update({f"bd_{o}": str(n) for o, n in stats["call_status_breakdown"].items()})
    return expected


def _js_string(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def wait_for_values(page: Any, site: Site) -> dict[str, Any]:
    """Wait until the page shows exactly the API's numbers; those numbers."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        stats = site.stats()
        shown = await shown_values(page)
        if shown == expected_values(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"page shows {shown}, API says {expected_values(stats)}")
        await page.wait_for_timeout(100)


async def sign_in(page: Any, site: Site, key: str) -> None:
    """Type a key into the sign-in form and submit it."""
    await page.fill("#api-key", key)
    await page.click("#signin-button")


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
