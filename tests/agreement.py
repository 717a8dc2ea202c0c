"""The check every numbers test ends with: the API, reconcile's recomputation and the oracle agree.

The oracle (tests/oracle.py) never imports the code under test; this module is
where its replay meets the API's answer and the raw rows, and where the property tests deliver
contacts and events to both.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import httpx

from callstats.app import CallstatsApp
from callstats.stats.reconcile import differences, recompute
from callstats.stats.response import stats_response
from tests.oracle import OUTCOMES, CampaignOracle, Event, comparable, epoch_ms, half_up


def assert_invariants(data: Mapping[str, Any], oracle: CampaignOracle) -> None:
    """Every rule of the semantics page that ties the response's fields together."""
    states = [data[k] for k in ("calls_completed", "calls_failed", "calls_in_progress", "calls_pending")]
    completed, failed, in_progress, pending = states
    assert data["total_contacts"] == sum(states)
    breakdown = data["call_status_breakdown"]
    assert list(breakdown) == list(OUTCOMES)
    assert sum(breakdown.values()) == oracle.finished_contacts()
    assert breakdown["answered"] == completed
    final = completed + failed
    rate = float(half_up(Fraction(100 * completed, final), 2)) if final else 0.0
    assert data["success_rate"] == rate
    talk = data["total_call_duration"]
    assert data["average_call_duration"] == (int(half_up(Fraction(talk, completed), 0)) if completed else 0)
    settled = data["total_contacts"] > 0 and pending == 0 and in_progress == 0
    assert (data["completed_at"] is not None) == settled
    started = data["started_at"]
    assert (None if started is None else epoch_ms(started)) == oracle.first_start()


async def assert_stats(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    app: CallstatsApp,
    campaign_id: str,
    oracle: CampaignOracle,
) -> Mapping[str, Any]:
    """GET /getCampaignStats equals reconcile's recomputation and the oracle's replay."""
    response = await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    with app.db.read() as conn:
        recomputed = recompute(conn, campaign_id)
        found = differences(conn, campaign_id)
    assert recomputed is not None
    assert data == stats_response(recomputed)
    assert found == []
    assert comparable(data) == oracle.stats()
    assert_invariants(data, oracle)
    return data


async def post_events(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, prefix: str, events: list[Event]
) -> list[tuple[str, str | None]]:
    """Deliver one request of events; each event's (status, error)."""
    body = {"events": [e.body(campaign_id, prefix) for e in events]}
    response = await client.post("/recordCallEvents", json=body, headers=auth)
    assert response.status_code == 200, response.text
    results = response.json()["data"]["results"]
    assert [r["event_id"] for r in results] == [b["event_id"] for b in body["events"]]
    return [(r["status"], r["error"]) for r in results]


async def add_contacts(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, rows: list[str], oracle: CampaignOracle
) -> None:
    """addContacts with phones written any way; its counts equal the oracle's."""
    body = {"contacts": [{"phone": p} for p in rows]}
    response = await client.post(f"/addContacts/{campaign_id}", json=body, headers=auth)
    assert response.status_code == 200, response.text
    added = response.json()["data"]
    accepted, duplicate = oracle.add_contacts(f"+1{''.join(c for c in p if c.isdigit())[-10:]}" for p in rows)
    assert (added["accepted"], added["duplicate"], added["invalid"]) == (accepted, duplicate, 0)
