"""The client's retries against real failures: a real rate limit's 429 waited out after its Retry-After,
a real SQLite lock's 503, a lost acknowledgement of recordCallEvents sent again without counting twice,
and the live stream resuming across a restart of the server."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from callstats_client import (
    CampaignStats,
    Client,
    RateLimited,
    RetryNotice,
    RetryPolicy,
    ServiceUnavailable,
    Unauthorized,
)
from tests.client.conftest import FAST, Retries, Served, sqlite_copy
from tests.client.proxy import dropping_proxy
from tests.factories import ended_call, phones
from tests.servers import server_env, start_server
from tests.stream.helpers import new_key

METRICS_TOKEN = "client-metrics-token-0123"


@pytest.fixture(scope="module")
def limited(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server whose stats quota is 2 reads per second per campaign, and whose database waits are
    at most 1 s (then 503 with Retry-After)."""
    folder = tmp_path_factory.mktemp("limited")
    url = sqlite_copy(sqlite_template, folder)
    env = server_env(url, stats_rate_limit="2/second", db_timeout_seconds="1", metrics_token=METRICS_TOKEN)
    server = start_server(env, folder)
    try:
        yield Served(server, url, env, new_key(url), new_key(url, "read"))
    finally:
        server.stop()


def test_a_real_429_is_waited_out_after_its_retry_after(limited: Served) -> None:
    """Without status retries the quota's 429 is RateLimited with the server's Retry-After; with them,
    every read succeeds and each 429 was retried after waiting that long."""
    with Client(limited.base_url, limited.write_key) as api:
        campaign_id = api.create_campaign("Quota").campaign_id
    impatient = Client(limited.base_url, limited.write_key, retry=RetryPolicy(max_status_retries=0))
    with impatient, pytest.raises(RateLimited) as caught:
        for _ in range(20):
            impatient.get_campaign_stats(campaign_id)
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    assert caught.value.status == 429 and caught.value.message
    retries = Retries()
    with Client(limited.base_url, limited.write_key, on_retry=retries) as patient:
        read = [patient.get_campaign_stats(campaign_id) for _ in range(4)]
    assert [stats.campaign_id for stats in read] == [campaign_id] * 4
    waits = [n for n in retries.notices if n.status == 429]
    assert waits, "4 reads at 2 per second right after the quota was spent meet a 429"
    assert all(n.operation == "getCampaignStats" and n.delay >= 1 for n in waits)


def test_metrics_with_the_servers_token(limited: Served) -> None:
    """With CALLSTATS_METRICS_TOKEN set, /metrics needs it as a bearer token: Unauthorized without."""
    with Client(limited.base_url, limited.read_key) as api:
        with pytest.raises(Unauthorized):
            api.metrics()
        assert "callstats_http_requests_total" in api.metrics(token=METRICS_TOKEN)


def test_a_503_is_retried_for_events_and_raised_for_a_create(limited: Served) -> None:
    """An exclusive lock on the SQLite file makes the server's writes wait 1 s, then 503 with
    Retry-After: createCampaign (not safe to repeat) raises ServiceUnavailable; recordCallEvents is sent
    again after Retry-After, here once the lock is released, and applied."""
    with Client(limited.base_url, limited.write_key) as api:
        campaign = api.create_campaign("Locked")
        phone = phones(1, 310)[0]
        api.add_contacts(campaign.campaign_id, [{"phone": phone}])
    locker = sqlite3.connect(
        limited.database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=10
    )
    locker.execute("BEGIN EXCLUSIVE")
    retries = Retries()

    def unlock_on_retry(notice: RetryNotice) -> None:
        retries(notice)
        if locker.in_transaction:
            locker.execute("ROLLBACK")

    try:
        with Client(limited.base_url, limited.write_key, on_retry=unlock_on_retry) as api:
            with pytest.raises(ServiceUnavailable) as caught:
                api.create_campaign("Not now")
            assert caught.value.retry_after is not None and retries.notices == []
            event = ended_call(campaign.campaign_id, phone, f"call-{uuid.uuid4().hex}", "answered", 42)
            recorded = api.record_events([event])
            assert recorded.applied == 1
            assert [(n.operation, n.status) for n in retries.notices] == [("recordCallEvents", 503)]
            assert api.get_campaign_stats(campaign.campaign_id).total_call_duration == 42
    finally:
        locker.close()


def test_a_lost_acknowledgement_is_sent_again_without_double_counting(served: Served) -> None:
    """2,500 events in 3 requests; the second one's answer is dropped after the server committed it.
    The client sends it again (its events are duplicates now) and the stats count every call once."""
    with Client(served.base_url, served.write_key) as api:
        campaign = api.create_campaign("Dropped", max_attempts=1)
        numbers = phones(2_500, 311)
        api.add_contacts(campaign.campaign_id, [{"phone": p} for p in numbers])
    events = [
        ended_call(campaign.campaign_id, p, f"call-{uuid.uuid4().hex}", "answered", 10) for p in numbers
    ]
    retries = Retries()
    with (
        dropping_proxy(served.server.port, b"POST /recordCallEvents", drop=2) as proxy,
        Client(proxy.base_url, served.write_key, retry=FAST, on_retry=retries) as api,
    ):
        recorded = api.record_events(events)
        stats = api.get_campaign_stats(campaign.campaign_id)
    assert proxy.dropped == 1
    assert [(n.operation, n.status) for n in retries.notices] == [("recordCallEvents", None)]
    assert (recorded.received, recorded.requests) == (2_500, 3)
    statuses = [r.status for r in recorded.results]
    assert statuses == ["applied"] * 1_000 + ["duplicate"] * 1_000 + ["applied"] * 500
    assert (stats.calls_completed, stats.total_call_duration) == (2_500, 25_000)
    assert stats.call_status_breakdown.answered == 2_500


def test_the_stream_resumes_after_the_server_restarts(sqlite_template: Path, tmp_path: Path) -> None:
    """stream_stats yields the numbers; the server is stopped and started again on its port; the same
    iterator reconnects on its own and yields the numbers changed while it was away."""
    url = sqlite_copy(sqlite_template, tmp_path)
    env = server_env(url)
    key = new_key(url)
    server = start_server(env, tmp_path)
    try:
        retries = Retries()
        with Client(server.base_url, key, retry=FAST, on_retry=retries) as api:
            campaign = api.create_campaign("Restarted")
            phone = phones(1, 312)[0]
            api.add_contacts(campaign.campaign_id, [{"phone": phone}])
            stream = api.stream_stats(campaign.campaign_id)
            first = next(stream)
            assert (first.total_contacts, first.calls_completed) == (1, 0)
            server.stop()
            server = start_server(env, tmp_path, port=server.port)
            api.record_events(
                [ended_call(campaign.campaign_id, phone, f"call-{uuid.uuid4().hex}", "answered", 5)]
            )
            resumed = next(stream)
            stream.close()
        assert (resumed.calls_completed, resumed.total_call_duration) == (1, 5)
    finally:
        server.stop()


def test_a_stream_ended_by_the_server_resumes_without_resending(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """Streams last 0.5 s here: stream_stats reconnects after each end with Last-Event-ID, so the
    numbers it already yielded are not yielded again; the next item is the next change."""
    url = sqlite_copy(sqlite_template, tmp_path)
    key = new_key(url)
    server = start_server(server_env(url, stream_max_seconds="0.5"), tmp_path)
    arrivals: queue.Queue[CampaignStats | BaseException] = queue.Queue()
    try:
        with Client(server.base_url, key, retry=FAST) as api:
            campaign = api.create_campaign("Quiet")
            phone = phones(1, 313)[0]
            api.add_contacts(campaign.campaign_id, [{"phone": phone}])

            def read() -> None:
                try:
                    for stats in api.stream_stats(campaign.campaign_id):
                        arrivals.put(stats)
                        if stats.calls_completed:
                            return
                except BaseException as exc:  # handed to the test's thread
                    arrivals.put(exc)

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            assert _next(arrivals).calls_completed == 0
            time.sleep(2)  # four streams end and are reopened meanwhile, with nothing new to send
            api.record_events(
                [ended_call(campaign.campaign_id, phone, f"call-{uuid.uuid4().hex}", "answered", 1)]
            )
            assert _next(arrivals).calls_completed == 1, "the numbers held were not sent again"
            reader.join(timeout=10)
    finally:
        server.stop()


def _next(arrivals: queue.Queue[CampaignStats | BaseException]) -> CampaignStats:
    item = arrivals.get(timeout=15)
    if isinstance(item, BaseException):
        raise item
    return item
