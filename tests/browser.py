"""Headless Chromium (Debian's) against a real server: launch flags, the campaign site, page readings.

Needs `apt-get install chromium` (/usr/bin/chromium) and the `playwright` Python package (its own
driver; no browser download).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.seed import SEED_FIELDS
from tests.servers import ServerProcess, start_server
from tests.stream.helpers import post_events

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


def now() -> str:
    """This moment in ISO 8601 with milliseconds (UTC), for events that happen now."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
