"""Several server processes on one PostgreSQL and one Redis: shared data, shared rate limit, failover.

The helpers here (`start_server`, `issue_key`, ...) run `callstats serve` as real subprocesses;
tests/test_importer.py and tests/test_nginx.py use them too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PG_URL, REDIS_URL
from tests.tools import needs_redis_server

HOST = "127.0.0.1"
STARTUP_S = 60.0
STOP_S = 10.0
RATE_LIMIT = 10
REDIS_SERVER = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(
    not (PG_URL and REDIS_URL),
    reason="needs CALLSTATS_TEST_DATABASE_URL and CALLSTATS_TEST_REDIS_URL (PostgreSQL and Redis)",
)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, redis_url: str | None = None, **settings: str) -> dict[str, str]:
    """The environment of a callstats subprocess: ours minus any CALLSTATS_*, plus these settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CALLSTATS_")}
    env["CALLSTATS_DATABASE_URL"] = database_url
    env["CALLSTATS_LOG_LEVEL"] = "warning"
    if redis_url:
        env["CALLSTATS_REDIS_URL"] = redis_url
    env.update({f"CALLSTATS_{name.upper()}": value for name, value in settings.items()})
    return env


def callstats_argv(*args: str) -> list[str]:
    """The `callstats` command line, run by this interpreter."""
    return [sys.executable, "-m", "callstats.cli", *args]


@dataclass
class ServerProcess:
    """One `callstats serve` subprocess, leading its own process group (uvicorn workers included)."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://{HOST}:{self.port}"

    def log_tail(self) -> str:
        """The end of the server's output, for failure messages."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or a lost host would."""
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_S)

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL after STOP_S seconds."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                self.kill()
        # Workers outlive a killed parent only briefly; make sure none is left behind.
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def start_server(
    env: dict[str, str], log_dir: Path, workers: int = 1, port: int | None = None
) -> ServerProcess:
    """`callstats serve` on `port` (a free one by default); returns once /ready answers 200.

    It waits at most STARTUP_S seconds. A stopped server's port restarts it where its clients expect it.
    """
    port = port or free_port()
    log = log_dir / f"server-{port}-{uuid.uuid4().hex[:6]}.log"
    argv = callstats_argv("serve", "--host", HOST, "--port", str(port), "--workers", str(workers))
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = ServerProcess(port, process, log)
    try:
        wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_ready(server: ServerProcess) -> None:
    """Poll /ready until it answers 200; fail with the server's log otherwise."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.base_url + "/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"server not ready within {STARTUP_S:.0f} s:\n{server.log_tail()}")


@contextlib.contextmanager
def running_servers(
    env: dict[str, str], log_dir: Path, count: int, workers: int = 1
) -> Iterator[list[ServerProcess]]:
    """`count` servers with the same settings, all stopped on the way out."""
    servers: list[ServerProcess] = []
    try:
        for _ in range(count):
            servers.append(start_server(env, log_dir, workers))
        yield servers
    finally:
        for server in servers:
            server.stop()


def issue_key(env: dict[str, str], scope: str = "write") -> str:
    """A key of a new account, from `callstats keys create --json`."""
    argv = callstats_argv(
        "keys", "create", "--account", f"acct-{uuid.uuid4().hex[:12]}", "--scope", scope, "--json"
    )
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=True)
    key: str = json.loads(done.stdout)["key"]
    return key


def create_campaign(http: httpx.Client, base_url: str, name: str = "scale-out") -> str:
    """A new campaign through the API."""
    response = http.post(f"{base_url}/createCampaign", json={"name": name})
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["data"]["campaign_id"]
    return campaign_id


def add_contacts(http: httpx.Client, base_url: str, campaign_id: str, phones: list[str]) -> dict[str, Any]:
    """addContacts as CSV; its answer's data."""
    body = "phone,name\n" + "".join(f"{phone},Contact {i}\n" for i, phone in enumerate(phones))
    response = http.post(
        f"{base_url}/addContacts/{campaign_id}", content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def answered_call(campaign_id: str, phone: str, seconds: int) -> list[dict[str, Any]]:
    """The events of one call answered and ended after `seconds` of talk."""
    call_id = f"call-{uuid.uuid4().hex}"
    base = {"campaign_id": campaign_id, "phone": phone, "call_id": call_id}
    return [
        {**base, "event_id": f"{call_id}-s", "type": "call.started", "occurred_at": "2024-01-16T09:00:00Z"},
        {
            **base,
            "event_id": f"{call_id}-e",
            "type": "call.ended",
            "outcome": "answered",
            "duration_seconds": seconds,
            "occurred_at": "2024-01-16T09:05:00Z",
        },
    ]


def record_events(http: httpx.Client, base_url: str, events: list[dict[str, Any]]) -> None:
    """recordCallEvents; every event must be applied."""
    response = http.post(f"{base_url}/recordCallEvents", json={"events": events})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["applied"] == len(events), response.text


def stats(http: httpx.Client, base_url: str, campaign_id: str) -> dict[str, Any]:
    """getCampaignStats' data (the request must succeed)."""
    response = http.get(f"{base_url}/getCampaignStats/{campaign_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def phones(count: int, exchange: int = 200) -> list[str]:
    """`count` distinct valid US numbers."""
    return [f"+1415{exchange}{line:04d}" for line in range(count)]


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
