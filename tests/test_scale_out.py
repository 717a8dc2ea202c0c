"""Several server processes on one PostgreSQL and one Redis: shared data, shared rate limit, failover.

The servers are real `callstats serve` subprocesses (tests/servers.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_URL, REDIS_URL
from tests.factories import add_contacts, answered_call, create_campaign, phones, record_events, stats
from tests.servers import (
    HOST,
    STARTUP_S,
    STOP_S,
    ServerProcess,
    free_port,
    issue_key,
    running_servers,
    server_env,
)
from tests.tools import needs_redis_server

RATE_LIMIT = 10
REDIS_SERVER = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(
    not (PG_URL and REDIS_URL),
    reason="needs CALLSTATS_TEST_DATABASE_URL and CALLSTATS_TEST_REDIS_URL (PostgreSQL and Redis)",
)


@pytest.fixture
def shared_env(pg_migrated: str) -> dict[str, str]:
    """Settings every server of a test shares: one PostgreSQL, one Redis, a small stats limit."""
    return server_env(pg_migrated, REDIS_URL, stats_rate_limit=f"{RATE_LIMIT}/minute")


def test_two_servers_share_data_limit_and_survive_a_crash(shared_env: dict[str, str], tmp_path: Path) -> None:
    """Writes on one are read on the other, the limit spans both, and one dies while the other serves."""
    key = issue_key(shared_env)
    with (
        running_servers(shared_env, tmp_path, count=2) as (one, two),
        httpx.Client(headers={"x-api-key": key}, timeout=30) as http,
    ):
        campaign_id = create_campaign(http, one.base_url)
        numbers = phones(20)
        assert add_contacts(http, one.base_url, campaign_id, numbers)["accepted"] == 20
        record_events(http, one.base_url, [e for p in numbers[:3] for e in answered_call(campaign_id, p, 60)])
        read_on_two = stats(http, two.base_url, campaign_id)
        assert (read_on_two["total_contacts"], read_on_two["calls_completed"]) == (20, 3)
        assert read_on_two["total_call_duration"] == 180
        record_events(http, two.base_url, answered_call(campaign_id, numbers[3], 40))
        assert stats(http, one.base_url, campaign_id)["calls_completed"] == 4
        assert stats(http, one.base_url, campaign_id) == stats(http, two.base_url, campaign_id)

        check_limit_spans(http, [one, two], create_campaign(http, two.base_url, "limited"))

        one.kill()
        with pytest.raises(httpx.ConnectError):
            http.get(f"{one.base_url}/health")
        assert http.get(f"{two.base_url}/ready").status_code == 200
        assert add_contacts(http, two.base_url, campaign_id, phones(5, exchange=201))["accepted"] == 5
        record_events(http, two.base_url, answered_call(campaign_id, numbers[4], 30))
        after = stats(http, two.base_url, campaign_id)
        assert (after["total_contacts"], after["calls_completed"], after["total_call_duration"]) == (
            25,
            5,
            250,
        )


def check_limit_spans(http: httpx.Client, servers: list[ServerProcess], campaign_id: str) -> None:
    """RATE_LIMIT reads spread over the servers pass with a falling remaining count; the next is a 429."""
    remaining = []
    for index in range(RATE_LIMIT):
        response = http.get(f"{servers[index % len(servers)].base_url}/getCampaignStats/{campaign_id}")
        assert response.status_code == 200, response.text
        remaining.append(int(response.headers["ratelimit"].split("r=")[1].split(";")[0]))
    assert remaining == list(range(RATE_LIMIT - 1, -1, -1))
    for server in servers:
        refused = http.get(f"{server.base_url}/getCampaignStats/{campaign_id}")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) >= 1


def test_two_workers_serve_consistent_numbers(shared_env: dict[str, str], tmp_path: Path) -> None:
    """`serve --workers 2`: each read on a fresh connection sees every write acknowledged before it."""
    key = issue_key(shared_env)
    fresh_connections = httpx.Limits(max_keepalive_connections=0)
    with (
        running_servers(shared_env, tmp_path, count=1, workers=2) as (server,),
        httpx.Client(headers={"x-api-key": key}, timeout=30, limits=fresh_connections) as http,
    ):
        campaign_id = create_campaign(http, server.base_url)
        numbers = phones(RATE_LIMIT, exchange=202)
        for count, phone in enumerate(numbers, start=1):
            add_contacts(http, server.base_url, campaign_id, [phone])
            record_events(http, server.base_url, answered_call(campaign_id, phone, count))
            seen = stats(http, server.base_url, campaign_id)
            assert (seen["total_contacts"], seen["calls_completed"]) == (count, count)
            assert seen["total_call_duration"] == count * (count + 1) // 2
        refused = http.get(f"{server.base_url}/getCampaignStats/{campaign_id}")
        assert refused.status_code == 429, refused.text


@contextlib.contextmanager
def private_redis(log_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A redis-server of our own on a free loopback port, so the test may stop and kill it."""
    assert REDIS_SERVER
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    with (log_dir / "redis.log").open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_S
        while not _answers(port):
            assert process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield process, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_S)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
    return False


@needs_redis_server
def test_stats_reads_go_on_while_redis_hangs_or_dies(pg_migrated: str, tmp_path: Path) -> None:
    """Redis hung or dead: reads are served unlimited after the URL's socket timeout; the limit resumes."""
    with private_redis(tmp_path) as (redis, port):
        redis_url = f"redis://{HOST}:{port}/0?socket_timeout=0.2&socket_connect_timeout=0.2"
        env = server_env(pg_migrated, redis_url, stats_rate_limit="3/minute")
        key = issue_key(env)
        with (
            running_servers(env, tmp_path, count=1) as (server,),
            httpx.Client(base_url=server.base_url, headers={"x-api-key": key}, timeout=30) as http,
        ):
            campaign_id = create_campaign(http, "")
            assert [read_status(http, campaign_id)[0] for _ in range(4)] == [200, 200, 200, 429]
            redis.send_signal(signal.SIGSTOP)
            for _ in range(3):
                status, seconds, limited = read_status(http, campaign_id)
                assert (status, limited) == (200, False)
                assert seconds < 2, "a hung Redis must cost a read no more than the socket timeout"
            assert add_contacts(http, "", campaign_id, phones(2, exchange=203))["accepted"] == 2
            assert stats(http, "", campaign_id)["total_contacts"] == 2
            redis.send_signal(signal.SIGCONT)
            assert read_status(http, campaign_id)[0] == 429
            redis.kill()
            redis.wait(timeout=STOP_S)
            status, _, limited = read_status(http, campaign_id)
            assert (status, limited) == (200, False)


def read_status(http: httpx.Client, campaign_id: str) -> tuple[int, float, bool]:
    """One stats read: its status, how long it took, and whether it carried a RateLimit count."""
    started = time.monotonic()
    response = http.get(f"/getCampaignStats/{campaign_id}")
    return response.status_code, time.monotonic() - started, "ratelimit" in response.headers
