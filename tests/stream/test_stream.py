"""GET /streamCampaignStats: errors, first message, changes, pings, resume, other processes, slow readers.

The stream tests run `callstats serve` subprocesses (httpx's in-process transport does not stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from callstats.accounts.service import authenticate
from callstats.app import CallstatsApp
from callstats.stream.hub import Mailbox, Snapshot, StreamHub
from tests.conftest import PG_URL, REDIS_URL, new_campaign
from tests.factories import add_contacts, create_campaign, ended_call, phones, started_call
from tests.stream.helpers import new_key, post_events, reading, serving, stats_data

ACK_TO_STREAM_S = 0.25  # the bound: a change is on the stream within 250 ms of its acknowledgement
needs_pg_and_redis = pytest.mark.skipif(
    not (PG_URL and REDIS_URL), reason="needs CALLSTATS_TEST_DATABASE_URL and CALLSTATS_TEST_REDIS_URL"
)
needs_pg = pytest.mark.skipif(not PG_URL, reason="needs CALLSTATS_TEST_DATABASE_URL")


# ---------- errors, in process ----------


async def test_errors_use_the_envelope(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """400 bad id, 401 without or with a wrong key, 404 for an unknown or another account's campaign."""
    campaign_id = await new_campaign(client, auth)
    other = {"x-api-key": make_key(account="someone-else", scope="read")}
    cases = [
        ("not-a-uuid", auth, 400, "VALIDATION_ERROR"),
        (campaign_id, {}, 401, "UNAUTHORIZED"),
        (campaign_id, {"x-api-key": "cs_nope"}, 401, "UNAUTHORIZED"),
        ("00000000-0000-4000-8000-000000000000", auth, 404, "NOT_FOUND"),
        (campaign_id, other, 404, "NOT_FOUND"),
    ]
    for raw_id, headers, status, code in cases:
        response = await client.get(f"/streamCampaignStats/{raw_id}", headers=headers)
        assert response.status_code == status, (raw_id, response.text)
        body = response.json()
        assert body["success"] is False and body["error"] == code and body["message"], body
        assert response.headers["content-type"].startswith("application/json")


async def test_a_write_publishes_its_campaign(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """recordCallEvents and addContacts signal the change feed with the campaigns they changed."""
    campaign_id = await new_campaign(client, auth)
    subscription = app.api.state.feed.subscribe(campaign_id)
    try:
        response = await client.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": "+14155552671"}]}, headers=auth
        )
        assert response.status_code == 200
        assert await subscription.wait(timeout=2)
        event = started_call(campaign_id.upper(), "+14155552671", "call-1")
        response = await client.post("/recordCallEvents", json={"events": [event]}, headers=auth)
        assert response.json()["data"]["applied"] == 1
        assert await subscription.wait(timeout=2)
        response = await client.post("/recordCallEvents", json={"events": [event]}, headers=auth)
        assert response.json()["data"]["duplicate"] == 1
        assert not await subscription.wait(timeout=0.3)  # nothing applied: nothing published
    finally:
        subscription.close()
        await app.api.state.feed.stop()


async def test_a_reader_that_never_reads_holds_up_nobody(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The hub hands each stream only the newest snapshot: a stalled one neither blocks nor queues."""
    hub: StreamHub = app.api.state.streams
    account_id = authenticate(app.db, auth["x-api-key"]).account_id
    campaign_id = await new_campaign(client, auth)
    try:
        async with (
            hub.listening(account_id, campaign_id) as stalled,
            hub.listening(account_id, campaign_id) as healthy,
        ):
            assert await healthy.next(5) is not None
            for phone in phones(30):
                response = await client.post(
                    f"/addContacts/{campaign_id}", json={"contacts": [{"phone": phone}]}, headers=auth
                )
                assert response.status_code == 200
            newest = await _until_total(healthy, 30)
            assert stalled.latest == newest  # what waits for the stalled reader is one snapshot, the newest
            assert await stalled.next(0) == newest
    finally:
        await hub.close()


async def _until_total(mailbox: Mailbox, total: int) -> Snapshot:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        snapshot = await mailbox.next(max(0.01, deadline - asyncio.get_running_loop().time()))
        assert snapshot is not None, f"no snapshot with {total} contacts"
        if b'"total_contacts":%d,' % total in snapshot.body:
            return snapshot


# ---------- one server ----------


@pytest.fixture
def server_and_key(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, write key) of a server with 0.3 s heartbeats; stopped after the test."""
    key = new_key(database_url)
    with serving(database_url, tmp_path, stream_heartbeat_seconds="0.3") as server:
        yield server.base_url, key


def test_first_message_is_get_campaign_stats_then_each_change(server_and_key: tuple[str, str]) -> None:
    """The stream opens with getCampaignStats' exact body, then sends the numbers after each change."""
    base_url, key = server_and_key
    with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
        campaign_id = create_campaign(http, base_url, "streamed")
        numbers = phones(5)
        add_contacts(http, base_url, campaign_id, numbers)
        post_events(http, base_url, started_call(campaign_id, numbers[0], "c0"))
        with reading(base_url, key, campaign_id) as reader:
            _, first = reader.next_stats()
            assert first.data.encode() == http.get(f"{base_url}/getCampaignStats/{campaign_id}").content
            assert first.id is not None and int(first.id) > 0
            latencies = []
            for index, phone in enumerate(numbers[1:], 1):
                time.sleep(0.25)  # one change at a time: what is measured is not the 5-per-second coalescing
                acknowledged = post_events(http, base_url, started_call(campaign_id, phone, f"c{index}"))
                arrived, event = reader.stats_until({"calls_in_progress": index + 1})
                latencies.append(max(0.0, arrived - acknowledged))
                assert int(event.id or 0) > int(first.id)
                assert event.data.encode() == http.get(f"{base_url}/getCampaignStats/{campaign_id}").content
            time.sleep(0.25)
            acknowledged = post_events(
                http, base_url, ended_call(campaign_id, numbers[0], "c0", "answered", 42)
            )
            arrived, event = reader.stats_until({"calls_completed": 1})
            latencies.append(max(0.0, arrived - acknowledged))
            assert stats_data(event)["total_call_duration"] == 42
    assert max(latencies) < ACK_TO_STREAM_S, latencies


def test_heartbeats_and_headers(server_and_key: tuple[str, str]) -> None:
    """Comment pings keep an idle stream open; the response is an uncached event stream."""
    base_url, key = server_and_key
    with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
        campaign_id = create_campaign(http, base_url)
        with http.stream("GET", f"{base_url}/streamCampaignStats/{campaign_id}") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "no-cache" in response.headers["cache-control"]
            lines: list[str] = []
            for line in response.iter_lines():
                lines.append(line)
                if lines.count(": ping") == 2:
                    break
    assert lines[0].startswith("retry: ")
    assert [line.split(":")[0] for line in lines if line.startswith(("id:", "event:", "data:"))] == [
        "id",
        "event",
        "data",
    ]


def test_resume_with_last_event_id(server_and_key: tuple[str, str]) -> None:
    """Last-Event-ID equal to the current version: nothing resent; an older one: the current numbers."""
    base_url, key = server_and_key
    with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
        campaign_id = create_campaign(http, base_url)
        numbers = phones(2)
        add_contacts(http, base_url, campaign_id, numbers)
        with reading(base_url, key, campaign_id) as reader:
            _, first = reader.next_stats()
        with reading(base_url, key, campaign_id, last_event_id=first.id) as resumed:
            kinds = [resumed.next_event()[1] for _ in range(2)]
            assert all(event.event != "stats" for event in kinds), "the client already had these numbers"
            post_events(http, base_url, started_call(campaign_id, numbers[0], "r0"))
            _, changed = resumed.next_stats()
            assert stats_data(changed)["calls_in_progress"] == 1
        with reading(base_url, key, campaign_id, last_event_id=first.id) as behind:
            _, current = behind.next_stats(timeout=2)
            assert current.id == changed.id and current.data == changed.data


def test_ends_open_streams_when_the_server_stops(database_url: str, tmp_path: Path) -> None:
    """SIGTERM ends open streams at once, so the server stops without waiting for its clients."""
    key = new_key(database_url)
    with (
        serving(database_url, tmp_path) as server,
        httpx.Client(headers={"x-api-key": key}, timeout=30) as http,
    ):
        campaign_id = create_campaign(http, server.base_url)
        with reading(server.base_url, key, campaign_id) as reader:
            reader.next_stats()
            started = time.monotonic()
            server.process.terminate()
            with pytest.raises((EOFError, httpx.HTTPError)):
                reader.next_stats(timeout=5)
            server.process.wait(timeout=5)
            assert time.monotonic() - started < 5, server.log_tail()


def test_a_stalled_client_holds_up_neither_writes_nor_other_streams(
    database_url: str, tmp_path: Path
) -> None:
    """A client that never reads its stream: writes stay fast, other streams stay current, and it gets
    the newest numbers (not a backlog) once it reads again."""
    key = new_key(database_url)
    settings = {"stream_min_interval_seconds": "0", "stream_heartbeat_seconds": "0.005"}  # lots of bytes
    with (
        serving(database_url, tmp_path, **settings) as server,
        httpx.Client(headers={"x-api-key": key}, timeout=30) as http,
    ):
        base_url = server.base_url
        campaign_id = create_campaign(http, base_url, "x" * 200)  # a long name: bigger messages
        numbers = phones(300)
        add_contacts(http, base_url, campaign_id, numbers)
        with (
            stalled_stream(base_url, key, campaign_id) as stalled,
            reading(base_url, key, campaign_id) as healthy,
        ):
            healthy.next_stats()
            timings = []
            for index, phone in enumerate(numbers):
                started = time.monotonic()
                post_events(http, base_url, started_call(campaign_id, phone, f"s{index}"))
                timings.append(time.monotonic() - started)
            arrived, _ = healthy.stats_until({"calls_in_progress": len(numbers)})
            assert arrived - started < 1.0
            assert unsent_bytes(server.port, stalled.getsockname()[1]) > 0, (
                "the stalled client was not stalled"
            )
            assert read_until(stalled, b'"calls_in_progress":300,')
    assert max(timings) < 1.0, f"slowest write {max(timings):.3f} s"
    assert statistics.median(timings) < 0.1, f"median write {statistics.median(timings):.3f} s"


def unsent_bytes(server_port: int, client_port: int) -> int:
    """The server socket's send queue towards this client, from /proc/net/tcp (Linux)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return int(fields[4].split(":")[0], 16)
    raise AssertionError("no such connection")


def read_until(sock: socket.socket, wanted: bytes, timeout: float = 20.0) -> bool:
    """Read the socket until `wanted` shows up; False at the deadline."""
    sock.settimeout(1.0)
    deadline, seen = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return False
        seen = seen[-4096:] + chunk
        if wanted in seen:
            return True
    return False


@contextlib.contextmanager
def stalled_stream(base_url: str, key: str, campaign_id: str) -> Iterator[socket.socket]:
    """A raw TCP client that requests a stream with a tiny receive buffer and never reads it."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect((host, int(port)))
        head = f"GET /streamCampaignStats/{campaign_id} HTTP/1.1\r\nHost: {host}\r\nx-api-key: {key}\r\n\r\n"
        sock.sendall(head.encode())
        yield sock


# ---------- several processes ----------


def _across_processes(
    database_url: str, tmp_path: Path, redis_url: str | None, **settings: str
) -> list[float]:
    """Events posted to one server show on a stream served by another; the ack-to-stream delays."""
    key = new_key(database_url)
    settings.setdefault("stream_heartbeat_seconds", "0.3")  # a closed reader notices at the next ping
    with (
        serving(database_url, tmp_path, redis_url, **settings) as writer,
        serving(database_url, tmp_path, redis_url, **settings) as streamer,
        httpx.Client(headers={"x-api-key": key}, timeout=30) as http,
    ):
        campaign_id = create_campaign(http, writer.base_url, "across")
        numbers = phones(6)
        add_contacts(http, writer.base_url, campaign_id, numbers)
        delays = []
        with reading(streamer.base_url, key, campaign_id) as reader:
            reader.stats_until({"total_contacts": 6})
            for index, phone in enumerate(numbers):
                time.sleep(0.25)  # spaced out, so each change is measured on its own
                acknowledged = post_events(
                    http, writer.base_url, started_call(campaign_id, phone, f"x{index}")
                )
                arrived, _ = reader.stats_until({"calls_in_progress": index + 1})
                delays.append(max(0.0, arrived - acknowledged))
        return delays


@needs_pg_and_redis
def test_a_change_crosses_processes_through_redis(pg_migrated: str, tmp_path: Path) -> None:
    """Two servers on one PostgreSQL and Redis: the stream on one sees writes to the other within 250 ms."""
    delays = _across_processes(pg_migrated, tmp_path, REDIS_URL, stream_poll_seconds="30")
    assert max(delays) < ACK_TO_STREAM_S, delays


@needs_pg
def test_a_change_crosses_processes_through_postgresql_notify(pg_migrated: str, tmp_path: Path) -> None:
    """Without Redis, PostgreSQL's LISTEN/NOTIFY carries the change between servers."""
    delays = _across_processes(pg_migrated, tmp_path, None, stream_poll_seconds="30")
    assert max(delays) < ACK_TO_STREAM_S, delays


def test_sqlite_processes_see_each_other_by_polling(tmp_path: Path, sqlite_template: Path) -> None:
    """Two SQLite servers on one file have no feed between them: the stream's 200 ms poll catches up."""
    import shutil

    path = tmp_path / "shared.db"
    shutil.copy(sqlite_template, path)
    delays = _across_processes(f"sqlite:///{path}", tmp_path, None)
    assert max(delays) < 0.2 + ACK_TO_STREAM_S + 0.2, delays
