"""What the demo's end-to-end tests read of a running demo: its stats over HTTP, and the seed's
invariants they must keep."""

from __future__ import annotations

import time
from typing import Any

import httpx


def get_stats(base: str, campaign_id: str, key: str, timeout: float = 10) -> dict[str, Any]:
    """The campaign's stats, retrying while the server is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(
                f"{base}/getCampaignStats/{campaign_id}", headers={"x-api-key": key}, timeout=2
            )
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()["data"]
            return data
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def assert_consistent(stats: dict[str, Any], total: int) -> None:
    """The seed's invariants hold in one snapshot."""
    assert stats["total_contacts"] == total
    states = ("calls_completed", "calls_failed", "calls_in_progress", "calls_pending")
    assert sum(stats[s] for s in states) == total
    assert set(stats["call_status_breakdown"]) == {"answered", "busy", "no_answer", "failed", "voicemail"}
