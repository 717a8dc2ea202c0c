"""PostgreSQL frozen (SIGSTOP, which a network partition resembles) and stopped, under load.

A private cluster (tests/reliability/servers.py), never the shared server. While it
is down, every route answers 503 with Retry-After within the bound that
CALLSTATS_DB_TIMEOUT_SECONDS sets, whether its pooled connections were open (a
statement that never returns) or not (a connection that never completes); nothing
hangs. Afterwards the server recovers on its own (no restart) and every event it
acknowledged, before, during or after the outage, is stored, with counters equal
to the recomputation from the raw rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from callstats.db.engine import Database
from tests.reliability.conftest import Say, issue_key, new_campaign
from tests.reliability.ingest import Dialers, counter_differences, plans, stored_event_ids
from tests.reliability.probes import Answer, probe_all, route_probes, worst_by_route
from tests.reliability.servers import CallstatsServer, PrivatePostgres, wait_until

pytestmark = pytest.mark.reliability

TIMEOUT = 2.0  # CALLSTATS_DB_TIMEOUT_SECONDS for these servers (5 by default): keeps the suite short
BOUND = 2 * TIMEOUT + 1.0  # a step's timeout, a connect's, and scheduling on a loaded 2-core machine


@pytest.fixture
def server(private_postgres: PrivatePostgres, tmp_path: Path) -> Iterator[CallstatsServer]:
    """callstats on the private cluster."""
    env = {"CALLSTATS_DATABASE_URL": private_postgres.url, "CALLSTATS_DB_TIMEOUT_SECONDS": str(TIMEOUT)}
    running = CallstatsServer(env, tmp_path)
    running.start()
    yield running
    running.stop()


def all_answer(base_url: str, key: str, campaign_id: str) -> bool:
    """Whether every route answers without a 5xx."""
    answers = probe_all(base_url, route_probes(key, campaign_id), copies=1)
    return all(a.status < 500 for a in answers)


def outage(
    server: CallstatsServer,
    cluster: PrivatePostgres,
    down: Callable[[], None],
    up: Callable[[], None],
    say: Say,
    what: str,
) -> None:
    """Ingest, take the database `down` mid-way, probe every route twice, bring it `up`, check everything."""
    key = issue_key(cluster.url)
    campaign_id, phones = new_campaign(server.base_url, key, 120)
    probes = route_probes(key, campaign_id)
    assert all(a.status < 500 for a in probe_all(server.base_url, probes, copies=1))  # warm pools
    requests, events = plans(3, phones, 4, largest=2)
    dialers = Dialers(server.base_url, key, campaign_id, requests)
    dialers.start(within_seconds=90)
    wait_until(lambda: dialers.tally.requests_acknowledged >= 20, 30, "ingestion")
    down()
    answers: list[Answer] = []
    try:
        for _wave in range(2):  # first on the pooled connections, then on new ones
            answers += probe_all(server.base_url, probes)
    finally:
        up()
    recovered = wait_until(lambda: all_answer(server.base_url, key, campaign_id), 30, "recovery")
    finished = dialers.join()
    db = Database(cluster.url, pool_size=1)
    try:
        lost = dialers.tally.acknowledged - stored_event_ids(db, campaign_id)
        found = counter_differences(db, campaign_id)
    finally:
        db.dispose()
    say(
        f"PostgreSQL {what}, timeout {TIMEOUT} s: worst answer per route {worst_by_route(answers)}; "
        f"recovered in {recovered:.2f} s with no restart; {len(dialers.tally.acknowledged)} of {events} "
        f"events acknowledged, lost {len(lost)}; "
        f"not acknowledged meanwhile: {dict(dialers.tally.not_acknowledged)}"
    )
    slow = [a for a in answers if a.seconds > BOUND]
    wrong = [a for a in answers if a.status != 503 or a.retry_after is None]
    assert slow == [] and wrong == [], server.log_tail()
    assert finished and dialers.tally.unexpected == []
    assert lost == set() and len(dialers.tally.acknowledged) == events
    assert found == []


def test_frozen_postgres_answers_503_in_bounded_time_then_recovers(
    server: CallstatsServer, private_postgres: PrivatePostgres, say: Say
) -> None:
    """SIGSTOP on every PostgreSQL process: each route 503 + Retry-After within the bound; SIGCONT: back."""
    outage(server, private_postgres, private_postgres.freeze, private_postgres.thaw, say, "frozen (SIGSTOP)")


def test_stopped_postgres_answers_503_then_recovers(
    server: CallstatsServer, private_postgres: PrivatePostgres, say: Say
) -> None:
    """PostgreSQL shut down hard (immediate: crash recovery at start): 503s, then back once it restarts."""

    def restart() -> None:
        private_postgres.start()

    outage(server, private_postgres, lambda: private_postgres.stop("immediate"), restart, say, "stopped")


def test_stream_open_during_freeze_keeps_its_pings(
    server: CallstatsServer, private_postgres: PrivatePostgres, say: Say
) -> None:
    """An open stream outlives a freeze: it neither hangs the server nor ends; it resumes with new numbers."""
    key = issue_key(private_postgres.url)
    campaign_id, _phones = new_campaign(server.base_url, key, 2)
    with (
        httpx.Client(base_url=server.base_url, timeout=30) as http,
        http.stream("GET", f"/streamCampaignStats/{campaign_id}", headers={"x-api-key": key}) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        private_postgres.freeze()
        try:
            started = time.monotonic()
            ready = http.get("/ready")
            during = time.monotonic() - started
        finally:
            private_postgres.thaw()
        wait_until(lambda: http.get("/ready").status_code == 200, 30, "recovery")
        say(f"/ready during the freeze: {ready.status_code} in {during:.2f} s with a stream open")
        assert ready.status_code == 503 and during <= BOUND
