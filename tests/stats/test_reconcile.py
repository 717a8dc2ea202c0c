"""Reconcile: the recomputation from raw rows, and the `callstats reconcile` command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from callstats.app import CallstatsApp
from callstats.stats.queries import snapshot
from callstats.stats.reconcile import differences, live_differences, recompute
from callstats.stats.response import stats_response
from tests.conftest import new_campaign
from tests.oracle import BASE_MS, CampaignOracle, Event, comparable, phone_of

CALLSTATS = Path(sys.executable).parent / "callstats"


def run_reconcile(database_url: str, campaign_id: str) -> subprocess.CompletedProcess[str]:
    """`callstats reconcile CAMPAIGN_ID` against the test database."""
    env = {**os.environ, "CALLSTATS_DATABASE_URL": database_url}
    return subprocess.run(
        [str(CALLSTATS), "reconcile", campaign_id], env=env, capture_output=True, text=True, timeout=120
    )


async def busy_campaign(client: httpx.AsyncClient, auth: dict[str, str]) -> tuple[str, CampaignOracle]:
    """A campaign with contacts in every state, built through the API; and its oracle."""
    campaign_id = await new_campaign(client, auth, max_attempts=2, retry_on=["busy"])
    oracle = CampaignOracle(2, frozenset({"busy"}))
    phones = [phone_of(n) for n in range(5)]
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    assert added.status_code == 200
    oracle.add_contacts(phones)
    t = BASE_MS
    events = [
        Event("a-s", phones[0], "a", "call.started", t),
        Event("a-e", phones[0], "a", "call.ended", t + 90_000, "answered", 90),
        Event("b-e", phones[1], "b", "call.ended", t + 5_000, "no_answer"),
        Event("c1-e", phones[2], "c1", "call.ended", t + 7_000, "busy"),
        Event("c2-s", phones[2], "c2", "call.started", t + 60_000),
        Event("d-s", phones[3], "d", "call.started", t + 1_000),
        Event("d-e", phones[3], "d", "call.ended", t + 2_000, "busy"),
    ]
    prefix = f"{uuid.uuid4().hex[:8]}:"
    body = {"events": [e.body(campaign_id, prefix) for e in events]}
    response = await client.post("/recordCallEvents", json=body, headers=auth)
    assert response.status_code == 200 and response.json()["data"]["applied"] == len(events)
    for event in events:
        oracle.deliver(event)
    return campaign_id, oracle


async def test_snapshot_does_not_see_writes_committed_while_it_reads(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """Reconcile reads one snapshot: a write committed between its statements does not show as drift."""
    campaign_id, _ = await busy_campaign(client, auth)
    count = text("SELECT count(*) FROM contacts WHERE campaign_id = :c")
    with snapshot(app.db) as conn:
        before = conn.execute(count, {"c": campaign_id}).scalar_one()
        more = {"contacts": [{"phone": phone_of(n)} for n in range(100, 103)]}
        added = await client.post(f"/addContacts/{campaign_id}", json=more, headers=auth)
        assert added.status_code == 200 and added.json()["data"]["accepted"] == 3
        assert conn.execute(count, {"c": campaign_id}).scalar_one() == before
        assert differences(conn, campaign_id) == []
    with app.db.read() as conn:
        assert conn.execute(count, {"c": campaign_id}).scalar_one() == before + 3
    assert live_differences(app.db, campaign_id) == []


async def test_recompute_equals_api_and_oracle(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp
) -> None:
    """On a healthy campaign the recomputation, the API and the oracle agree, and there is no difference."""
    campaign_id, oracle = await busy_campaign(client, auth)
    data = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    with app.db.read() as conn:
        recomputed = recompute(conn, campaign_id)
        assert differences(conn, campaign_id) == []
    assert recomputed is not None and stats_response(recomputed) == data
    assert comparable(data) == oracle.stats()
    states = ("calls_completed", "calls_failed", "calls_in_progress", "calls_pending")
    assert [data[s] for s in states] == [1, 1, 1, 2]


def test_recompute_of_unknown_campaign_is_none(app: CallstatsApp) -> None:
    """No such campaign: recompute and differences say None, not an empty campaign."""
    with app.db.read() as conn:
        assert recompute(conn, str(uuid.uuid4())) is None
        assert differences(conn, str(uuid.uuid4())) is None


@pytest.mark.parametrize(
    ("column", "change", "field"),
    [
        ("completed", "completed + 1", "completed"),
        ("pending", "pending - 1", "pending"),
        ("bd_busy", "bd_busy + 2", "breakdown"),
        ("talk_seconds", "talk_seconds + 5", "talk_seconds"),
        ("first_call_at", "first_call_at - 1000", "first_call_at"),
    ],
)
async def test_differences_name_each_corrupted_number(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, column: str, change: str, field: str
) -> None:
    """A counters row changed behind the service's back is reported, field by field."""
    campaign_id, _ = await busy_campaign(client, auth)
    corrupt(app, campaign_id, f"{column} = {change}")
    with app.db.read() as conn:
        found = differences(conn, campaign_id)
    assert found is not None
    assert [d.field for d in found] == [field]
    assert found[0].counters != found[0].recomputed


def corrupt(app: CallstatsApp, campaign_id: str, assignment: str) -> None:
    """Change one counter slot of the campaign directly in SQL."""
    with app.db.engine.begin() as conn:
        changed = conn.execute(
            text(
                f"UPDATE campaign_counters SET {assignment} WHERE campaign_id = :cid AND slot = "
                "(SELECT MIN(slot) FROM campaign_counters"
                " WHERE campaign_id = :cid AND first_call_at IS NOT NULL)"
            ),
            {"cid": campaign_id},
        )
        assert changed.rowcount == 1


async def test_cli_reports_match_then_the_corruption(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, database_url: str
) -> None:
    """`callstats reconcile`: exit 0 and "match" when healthy; exit 1 naming the corrupted number."""
    campaign_id, oracle = await busy_campaign(client, auth)
    healthy = run_reconcile(database_url, campaign_id)
    assert healthy.returncode == 0, healthy.stderr
    assert "match" in healthy.stdout and campaign_id in healthy.stdout

    corrupt(app, campaign_id, "completed = completed + 1")
    broken = run_reconcile(database_url, campaign_id)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    completed = oracle.count("completed")
    assert f"completed: counters={completed + 1} recomputed={completed}" in broken.stdout
    assert "1 difference" in broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr


async def test_cli_on_an_empty_and_an_unknown_campaign(
    client: httpx.AsyncClient, auth: dict[str, str], database_url: str
) -> None:
    """A campaign without contacts matches (exit 0); an unknown id exits 2 saying there is no such campaign
    (1 is kept for counters that differ)."""
    campaign_id = await new_campaign(client, auth)
    empty = run_reconcile(database_url, campaign_id)
    assert empty.returncode == 0 and "match" in empty.stdout
    unknown_id = str(uuid.uuid4())
    unknown = run_reconcile(database_url, unknown_id)
    assert unknown.returncode == 2
    assert unknown.stderr == f"callstats reconcile: no campaign {unknown_id} in this database\n"
    assert "Traceback" not in unknown.stderr
