"""/dashboard says what its numbers mean (final vs latest outcome, contacts being retried) and what a rate
limit does, and its campaign list spends no campaign's getCampaignStats quota. Real headless Chromium
against a real server, as in test_dashboard.py.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import CHROMIUM_ARGS, WAIT_MS, Site, now, sign_in, wait_for_values
from tests.factories import add_contacts, ended_call, phones, started_call
from tests.servers import server_env, start_server
from tests.stream.helpers import new_key
from tests.tools import CHROMIUM, needs_chromium

pytestmark = needs_chromium
playwright_api = pytest.importorskip("playwright.async_api", reason="needs the playwright Python package")

MAX_ATTEMPTS = 2
# Records, from before the page's own script runs, every moment a list cell showed a bare dash.
BARE_DASH_WATCH = """
window.bareDashes = [];
new MutationObserver(() => {
  for (const cell of document.querySelectorAll('#campaign-rows [data-cell]')) {
    if (cell.textContent.trim() === '\\u2013' || cell.textContent.trim() === '-') {
      window.bareDashes.push(cell.dataset.cell);
    }
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def make_site(sqlite_template: Path, tmp_path: Path, **settings: str) -> Site:
    """A server on a fresh SQLite file with these settings, a key, and an empty campaign of 8 contacts."""
    path = tmp_path / "meaning.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    env = server_env(url, stream_heartbeat_seconds="1", **settings)
    key = new_key(url)
    server = start_server(env, tmp_path)
    made = Site(server, env, key, "", phones(8, exchange=300), tmp_path)
    try:
        with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
            response = http.post(
                f"{server.base_url}/createCampaign", json={"name": "Retries", "max_attempts": MAX_ATTEMPTS}
            )
            assert response.status_code == 201, response.text
            made.campaign_id = response.json()["data"]["campaign_id"]
            add_contacts(http, server.base_url, made.campaign_id, made.phones)
    except BaseException:
        server.stop()
        raise
    return made


@pytest.fixture
def site(sqlite_template: Path, tmp_path: Path) -> Iterator[Site]:
    """A server with the default stats limit."""
    made = make_site(sqlite_template, tmp_path)
    try:
        yield made
    finally:
        made.server.stop()


@pytest.fixture
def limited_site(sqlite_template: Path, tmp_path: Path) -> Iterator[Site]:
    """A server allowing one getCampaignStats request a minute per campaign."""
    made = make_site(sqlite_template, tmp_path, stats_rate_limit="1/minute")
    try:
        yield made
    finally:
        made.server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium."""
    async with playwright_api.async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: Any) -> Any:
    """A tab recording page errors, every requested URL and every bare dash shown in the list."""
    tab = await browser.new_page(viewport={"width": 1280, "height": 1500})
    tab.problems = []
    tab.requested = []
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    tab.on("request", lambda r: tab.requested.append(r.url))
    tab.set_default_timeout(WAIT_MS)
    await tab.add_init_script(BARE_DASH_WATCH)
    return tab


class Calls:
    """Events sent for the site's campaign, and their call numbering per contact."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.sent: list[dict[str, Any]] = []
        self.count: defaultdict[int, int] = defaultdict(int)

    def call(self, contact: int, outcome: str | None) -> list[dict[str, Any]]:
        """A new call to `contact`: its start, and its end with `outcome` unless None (still live)."""
        self.count[contact] += 1
        call_id = f"k{contact}-{self.count[contact]}"
        phone = self.site.phones[contact]
        events = [started_call(self.site.campaign_id, phone, call_id, at=now())]
        if outcome is not None:
            events.append(ended_call(self.site.campaign_id, phone, call_id, outcome, 40, at=now()))
        return events

    def end(self, contact: int, outcome: str) -> dict[str, Any]:
        """The end of `contact`'s latest call."""
        call_id = f"k{contact}-{self.count[contact]}"
        phone = self.site.phones[contact]
        return ended_call(self.site.campaign_id, phone, call_id, outcome, 40, at=now())

    def send(self, *groups: list[dict[str, Any]] | dict[str, Any]) -> None:
        """recordCallEvents with these events (every one applied), remembered for the recomputation."""
        events = [e for g in groups for e in (g if isinstance(g, list) else [g])]
        self.sent.extend(events)
        self.site.post(*events)


def retrying_from_events(events: list[dict[str, Any]], max_attempts: int) -> int:
    """Contacts being retried, recomputed from the events alone with the campaign's rules.

    Per contact: its finished calls' outcomes in order. It is final once a call was answered or
    `max_attempts` calls finished (every outcome is retried by default); being retried means at
    least one finished call and not final (docs/semantics.md, Contact states).
    """
    finished: defaultdict[str, list[str]] = defaultdict(list)
    for event in events:
        if event["type"] == "call.ended":
            finished[event["phone"]].append(event["outcome"])
    return sum(
        1 for outcomes in finished.values() if "answered" not in outcomes and len(outcomes) < max_attempts
    )


async def shown(page: Any, selector: str) -> str:
    """The data-value behind one number of the campaign page."""
    value: str = await page.get_attribute(selector, "data-value")
    return value


async def test_final_vs_latest_is_explained_and_retries_counted(browser: Any, site: Site) -> None:
    """The issue's screen: Failed 0 and Success rate 100 % beside failed and busy calls, each explained in
    visible captions and tooltips next to the numbers, and the contacts being retried counted exactly."""
    page = await new_page(browser)
    calls = Calls(site)
    calls.send(
        calls.call(0, "answered"), calls.call(1, "busy"), calls.call(2, "failed"), calls.call(3, "busy")
    )
    await page.goto(f"{site.base_url}/dashboard")
    await sign_in(page, site, site.key)
    await page.goto(f"{site.base_url}/dashboard#/campaign/{site.campaign_id}")
    stats = await wait_for_values(page, site)
    assert (stats["calls_failed"], stats["success_rate"]) == (0, 100.0)
    assert stats["call_status_breakdown"]["failed"] + stats["call_status_breakdown"]["busy"] == 3
    await page.locator('[data-derived="contacts_retrying"][data-value="3"]').wait_for()
    assert retrying_from_events(calls.sent, MAX_ATTEMPTS) == 3

    failed_tile = page.locator(".tile", has=page.locator('[data-field="calls_failed"]'))
    rate_tile = page.locator(".tile", has=page.locator('[data-field="success_rate"]'))
    retry_tile = page.locator(".tile", has=page.locator('[data-derived="contacts_retrying"]'))
    for tile, caption, tooltip in (
        (failed_tile, "Final outcome", "final outcome is failed"),
        (rate_tile, "final outcomes only", "completed ÷ (completed + failed)"),
        (retry_tile, "not final yet", "at least one finished call and no final outcome"),
    ):
        hint = tile.locator(".hint")
        assert await hint.is_visible() and caption in await hint.inner_text()
        assert tooltip in (await tile.get_attribute("title") or "")
        hint_id = await hint.get_attribute("id")
        assert await tile.locator(".value").get_attribute("aria-describedby") == hint_id
    explained = page.locator("#final-vs-latest")
    assert await explained.is_visible()
    assert re.search(r"final.*outcome.*latest.*call", await explained.inner_text(), re.S)
    note = page.locator("#breakdown-note")
    await note.filter(has_text="including the 3 contacts being retried").wait_for()

    # A retry in progress, a contact out of attempts, a first call under way, a voicemail.
    calls.send(
        calls.call(3, None),
        calls.call(4, "no_answer"),
        calls.call(4, "no_answer"),
        calls.call(5, None),
        calls.call(6, "voicemail"),
    )
    stats = await wait_for_values(page, site)
    expected = retrying_from_events(calls.sent, MAX_ATTEMPTS)
    assert expected == 4 and stats["calls_failed"] == 1 and stats["calls_in_progress"] == 2
    await page.locator(f'[data-derived="contacts_retrying"][data-value="{expected}"]').wait_for()
    assert await page.inner_text('[data-derived="contacts_retrying"]') == str(expected)

    calls.send(calls.end(3, "answered"), calls.call(1, "busy"))  # one retry answers, one runs out
    stats = await wait_for_values(page, site)
    expected = retrying_from_events(calls.sent, MAX_ATTEMPTS)
    assert expected == 2 and (stats["calls_completed"], stats["calls_failed"]) == (2, 2)
    await page.locator(f'[data-derived="contacts_retrying"][data-value="{expected}"]').wait_for()
    assert not page.problems, page.problems


async def test_campaign_list_spends_no_stats_quota(browser: Any, limited_site: Site) -> None:
    """With one stats request a minute, the list shows every campaign's figures (never a bare dash) and
    the campaign's one getCampaignStats request is still there afterwards."""
    site = limited_site
    calls = Calls(site)
    calls.send(calls.call(0, "answered"), calls.call(1, "busy"))
    page = await new_page(browser)
    await page.goto(f"{site.base_url}/dashboard")
    await sign_in(page, site, site.key)
    row = page.locator(f'tr[data-campaign-id="{site.campaign_id}"]')
    await row.locator('[data-cell="contacts"]', has_text="1 / 8").wait_for()
    assert await row.locator('[data-cell="rate"]').inner_text() == "100.00 %"
    await page.wait_for_function("document.querySelectorAll('#campaign-rows [data-cell]').length > 0")
    assert any("/getCampaignSummaries?" in url for url in page.requested)
    assert not any("/getCampaignStats/" in url for url in page.requested), page.requested
    assert await page.evaluate("window.bareDashes") == []
    response = httpx.get(
        f"{site.base_url}/getCampaignStats/{site.campaign_id}", headers={"x-api-key": site.key}, timeout=30
    )
    assert response.status_code == 200, response.text  # the list left the minute's one request unspent
    assert not page.problems, page.problems


async def test_rate_limited_detail_says_so_and_when_it_refreshes(browser: Any, limited_site: Site) -> None:
    """The live stream is cut (as by a buffering proxy) and getCampaignStats answers 429: the campaign page
    says rate limited and in how many seconds it refreshes, waits that long instead of polling every
    5 s, and the list still shows its figures."""
    site = limited_site
    calls = Calls(site)
    calls.send(calls.call(0, "answered"))
    spent = httpx.get(
        f"{site.base_url}/getCampaignStats/{site.campaign_id}", headers={"x-api-key": site.key}, timeout=30
    )
    assert spent.status_code == 200  # the minute's one request is gone
    page = await new_page(browser)
    await page.route("**/streamCampaignStats/**", lambda route: route.abort())
    await page.goto(f"{site.base_url}/dashboard")
    await sign_in(page, site, site.key)
    await page.goto(f"{site.base_url}/dashboard#/campaign/{site.campaign_id}")

    status = page.locator("#campaign-status")
    await status.filter(has_text="rate limited").wait_for()
    seconds = re.search(r"rate limited.*refreshing in (\d+) s", await status.inner_text())
    assert seconds is not None and 1 <= int(seconds.group(1)) <= 60, await status.inner_text()
    badge = page.locator("#connection.limited")
    assert re.search(r"Rate limited, refreshing in \d+ s", await badge.inner_text())
    polls = [url for url in page.requested if "/getCampaignStats/" in url]
    await page.wait_for_timeout(6000)  # past the 5 s polling interval: no new request before Retry-After
    assert [url for url in page.requested if "/getCampaignStats/" in url] == polls
    assert len(polls) == 1

    await page.click("text=All campaigns")
    row = page.locator(f'tr[data-campaign-id="{site.campaign_id}"]')
    await row.locator('[data-cell="contacts"]', has_text="1 / 8").wait_for()
    assert await page.evaluate("window.bareDashes") == []
    assert await page.locator("#campaign-status").is_hidden()
    assert not page.problems, page.problems
