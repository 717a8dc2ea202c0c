"""SIGKILL of a real `callstats serve` during concurrent ingestion, several times: no acknowledged event lost.

Six dialers post a simulated campaign's events (each contact's events by one client,
in order, resent until acknowledged). The server is killed with SIGKILL whenever
another quarter of the requests has been acknowledged, and restarted. Afterwards every
acknowledged event is stored, each event was eventually acknowledged, the counters
equal reconcile's recomputation from the raw rows, and the stats equal the oracle's
replay of the events delivered once each.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from callstats.db.engine import Database
from callstats.stats.reconcile import recompute
from callstats.stats.response import stats_response
from tests.conftest import BACKENDS
from tests.oracle import comparable
from tests.reliability.conftest import Say, issue_key, new_campaign
from tests.reliability.ingest import Dialers, counter_differences, plans, replay, stored_event_ids
from tests.reliability.servers import CallstatsServer, wait_until

pytestmark = pytest.mark.reliability

KILLS = 3
CLIENTS = 6
CONTACTS = 240
SEED = 8


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_sigkill_during_ingestion_loses_no_acknowledged_event(
    database_url: str, tmp_path: Path, say: Say
) -> None:
    """3 SIGKILLs under 6 concurrent dialers: acknowledged == stored, counters == recomputation == oracle."""
    key = issue_key(database_url)
    server = CallstatsServer({"CALLSTATS_DATABASE_URL": database_url}, tmp_path)
    server.start()
    campaign_id, phones = new_campaign(server.base_url, key, CONTACTS)
    requests, events = plans(SEED, phones, CLIENTS, largest=3)
    total_requests = sum(len(r) for r in requests)
    dialers = Dialers(server.base_url, key, campaign_id, requests)
    started = time.monotonic()
    dialers.start(within_seconds=120)
    restarts: list[float] = []
    try:
        for kill in range(1, KILLS + 1):
            wait_until(
                lambda k=kill: dialers.tally.requests_acknowledged >= k * total_requests // (KILLS + 1),
                60,
                f"progress before kill {kill}",
            )
            server.kill()
            restarts.append(server.start())
        finished = dialers.join()
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    tally = dialers.tally
    db = Database(database_url, pool_size=1)
    try:
        stored = stored_event_ids(db, campaign_id)
        found = counter_differences(db, campaign_id)
        with db.read() as conn:
            recomputed = recompute(conn, campaign_id)
    finally:
        db.dispose()
    lost = tally.acknowledged - stored
    say(
        f"{db.engine.dialect.name}: {KILLS} SIGKILLs, {CLIENTS} clients, {events} events in {total_requests} "
        f"requests, {len(tally.acknowledged)} events acknowledged, lost {len(lost)}, "
        f"not acknowledged (sent again): {dict(tally.not_acknowledged)}, "
        f"restarts {', '.join(f'{r:.1f}' for r in restarts)} s, {elapsed:.1f} s in all"
    )
    assert finished, "the dialers did not finish"
    assert tally.unexpected == []
    assert lost == set()
    assert len(tally.acknowledged) == events  # every event was acknowledged in the end
    assert sum(tally.not_acknowledged.values()) > 0  # the kills did hit requests
    assert found == []
    assert recomputed is not None
    assert comparable(stats_response(recomputed)) == replay(phones, SEED).stats()
