"""`callstats serve` starts or fails promptly, and always stops on SIGTERM or SIGINT: real processes on
SQLite and on PostgreSQL, with Redis configured. The timeouts are generous: a test asserts that the
process ends, never how fast."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callstats.feed import ChangeFeed, RedisRelay
from tests.conftest import REDIS_URL
from tests.servers import HOST, callstats_argv, free_port, server_env, start_server

ENDS_WITHIN_S = 60.0  # generous: the assertion is that it ends at all
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="no CALLSTATS_TEST_REDIS_URL")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`callstats serve ARGS` run to its end (it must end by itself)."""
    argv = callstats_argv("serve", *args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=ENDS_WITHIN_S)


@needs_redis
def test_a_taken_port_ends_serve_with_one_line(database_url: str, taken_port: int) -> None:
    """With Redis configured it used to print the error, then wait for ever for its own shutdown."""
    done = serve(server_env(database_url, REDIS_URL), "--host", HOST, "--port", str(taken_port))
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert lines == [f"callstats serve: cannot listen on {HOST}:{taken_port}: Address already in use"], lines


@pytest.mark.parametrize(
    ("host", "says"),
    [("nohost.invalid", "unknown host"), ("192.0.2.1", "Cannot assign requested address")],
    ids=["unknown-host", "foreign-address"],
)
def test_a_host_it_cannot_listen_on_is_one_line(tmp_path: Path, host: str, says: str) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'cs.db'}")
    assert subprocess.run(callstats_argv("migrate"), env=env, capture_output=True, timeout=60).returncode == 0
    done = serve(env, "--host", host, "--port", "8000")
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"callstats serve: cannot listen on {host}:8000: "), lines
    assert says in lines[0]


@pytest.mark.parametrize(
    ("redis_url", "says"),
    [
        ("redis://:hunter2@127.0.0.1:1/0", "cannot reach Redis at redis://:***@127.0.0.1:1/0"),
        ("nonsense", "CALLSTATS_REDIS_URL='nonsense' is not a Redis URL"),
    ],
    ids=["unreachable", "malformed"],
)
def test_an_unusable_redis_is_one_line(tmp_path: Path, redis_url: str, says: str) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'cs.db'}", redis_url)
    assert subprocess.run(callstats_argv("migrate"), env=env, capture_output=True, timeout=60).returncode == 0
    done = serve(env, "--port", str(free_port()))
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert "hunter2" not in done.stderr


@needs_redis
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_running_server_stops_on_sigterm_and_sigint(
    database_url: str, tmp_path: Path, stop: signal.Signals, workers: int
) -> None:
    server = start_server(server_env(database_url, REDIS_URL), tmp_path, workers=workers)
    try:
        server.process.send_signal(stop)
        server.process.wait(timeout=ENDS_WITHIN_S)
    finally:
        server.stop()
    assert server.process.returncode is not None


def test_the_exit_deadline_ends_a_process_that_does_not_stop() -> None:
    """Once armed (by a stop signal), the deadline ends the process even if something holds it."""
    code = (
        "import time; from callstats.serving import arm_exit_deadline; "
        "arm_exit_deadline(0.5); arm_exit_deadline(1000); time.sleep(600)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=ENDS_WITHIN_S)
    assert done.returncode == 1, done
    assert "did not stop within 0.5 s of the stop signal" in done.stderr


def test_the_served_app_keeps_the_collector_off_the_hot_path(tmp_path: Path) -> None:
    """The factory `serve` runs (app_from_env) freezes what start-up built and raises the first
    generation's threshold (serving.tune_collector); in a process of its own, as gc.freeze is for the
    whole process."""
    code = (
        "import gc; from callstats.app import app_from_env; app_from_env(); "
        "print(gc.get_freeze_count(), gc.get_threshold()[0])"
    )
    env = server_env(f"sqlite:///{tmp_path / 'gc.db'}")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=ENDS_WITHIN_S
    )
    assert done.returncode == 0, done.stderr
    frozen, first_threshold = map(int, done.stdout.split())
    assert frozen > 10_000  # the modules and the app: tens of thousands of objects
    assert first_threshold == 10_000  # serving.FIRST_GENERATION_THRESHOLD, CPython's default being 700


@needs_redis
async def test_the_feed_stops_even_when_cancelled_while_subscribing() -> None:
    """The cause of the hang: a cancel that reached redis-py's subscribe at the wrong moment was dropped
    (Python 3.11's wait_for), so the listener read on and the shutdown awaited it for ever. Each
    number of loop steps before stop() lands the cancel at a different point of the subscription."""
    assert REDIS_URL
    for steps in range(16):
        feed = ChangeFeed(RedisRelay(REDIS_URL))
        await feed.start()
        for _ in range(steps):
            await asyncio.sleep(0)
        stopping = asyncio.create_task(feed.stop())
        done, _ = await asyncio.wait({stopping}, timeout=ENDS_WITHIN_S)
        assert stopping in done, f"stop() did not end after {steps} steps"
