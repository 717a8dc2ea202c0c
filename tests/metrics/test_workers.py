"""`callstats serve --workers 2`, a real server on loopback: /metrics sums both workers' counts.

Requests go on fresh connections, so the kernel hands them to either worker; the test reads each
worker's own file (prometheus-client's reader, in the private directory serve made under TMPDIR)
until both have answered some, then checks that the sum /metrics shows is exactly what was sent,
while a stream is open, after a worker is killed and replaced, and that the directory is gone once
the server stopped.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from tests.factories import add_contacts, create_campaign, phones, started_call
from tests.metrics.scrape import Samples, parsed, value
from tests.servers import issue_key, server_env, start_server

HEALTH = {"route": "/health", "method": "GET", "status": "200"}
BATCH = 20
MOST = 1000  # requests sent at most before both workers have taken some (one in 2**999 odds)
WAIT_S = 60.0


def worker_files(tmp: Path) -> dict[int, Path]:
    """Each worker's counter file, by its pid."""
    return {int(path.stem.rsplit("_", 1)[1]): path for path in tmp.glob("callstats-metrics-*/counter_*.db")}


def health_answered(path: Path) -> float:
    """/health answers one worker counted in its own file."""
    for family in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            if sample.name == "callstats_http_requests_total" and sample.labels == HEALTH:
                return float(sample.value)
    return 0.0


def scrape(base_url: str) -> Samples:
    """/metrics from a loopback client (no token set)."""
    response = httpx.get(base_url + "/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return parsed(response.text)


def eventually(base_url: str, holds: Callable[[Samples], bool]) -> Samples:
    """Scrape until `holds` is true of the samples (at most WAIT_S seconds)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        samples = scrape(base_url)
        if holds(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_metrics_sum_every_worker(database_url: str, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**server_env(database_url, stream_heartbeat_seconds="0.5"), "TMPDIR": str(tmp)}
    key = issue_key(env)
    server = start_server(env, tmp_path, workers=2)
    try:
        base, auth = server.base_url, {"x-api-key": key}
        with httpx.Client(headers=auth, timeout=30) as http:
            campaign_id = create_campaign(http, base)
            numbers = phones(40)
            add_contacts(http, base, campaign_id, numbers)
        sent = 0
        while sent < MOST and not (
            len(worker_files(tmp)) == 2 and all(map(health_answered, worker_files(tmp).values()))
        ):
            for _ in range(BATCH):
                assert httpx.get(base + "/health", timeout=30).status_code == 200
            sent += BATCH
        assert [health_answered(path) > 0 for path in worker_files(tmp).values()] == [True, True], (
            server.log_tail()
        )
        for n, phone in enumerate(numbers):  # one event a request, each on a connection of its own
            body = {"events": [started_call(campaign_id, phone, f"call-{n}")]}
            assert (
                httpx.post(base + "/recordCallEvents", json=body, headers=auth, timeout=30).status_code == 200
            )

        samples = scrape(base)
        assert value(samples, "callstats_http_requests_total", **HEALTH) == sent
        assert sum(health_answered(path) for path in worker_files(tmp).values()) == sent
        assert value(samples, "callstats_events_total", result="applied") == len(numbers)
        applied = {"route": "/recordCallEvents", "method": "POST", "status": "200"}
        assert value(samples, "callstats_http_requests_total", **applied) == len(numbers)
        assert value(samples, "callstats_db_pool_size_connections") == 2 * 20  # two workers' pools

        with (
            httpx.Client(timeout=30) as watcher,
            watcher.stream("GET", f"{base}/streamCampaignStats/{campaign_id}", headers=auth) as stream,
        ):
            assert stream.status_code == 200
            chunks = stream.iter_bytes()  # kept: a dropped iterator closes the response
            assert next(chunks).startswith(b"retry:")
            assert (
                value(
                    eventually(base, lambda s: value(s, "callstats_open_streams") == 1),
                    "callstats_open_streams",
                )
                == 1
            )
        assert (
            value(
                eventually(base, lambda s: value(s, "callstats_open_streams") == 0), "callstats_open_streams"
            )
            == 0
        )

        victim = min(worker_files(tmp))
        os.kill(victim, signal.SIGKILL)  # uvicorn starts another; the victim's counts stay, its gauges go
        replaced = eventually(
            base,
            lambda s: (
                len(worker_files(tmp)) == 3 and value(s, "callstats_db_pool_size_connections") == 2 * 20
            ),
        )
        assert len(worker_files(tmp)) == 3, server.log_tail()
        assert value(replaced, "callstats_db_pool_size_connections") == 2 * 20
        assert value(replaced, "callstats_http_requests_total", **HEALTH) == sent
        assert value(replaced, "callstats_events_total", result="applied") == len(numbers)
    finally:
        server.stop()
    assert list(tmp.glob("callstats-metrics-*")) == []  # serve removed its directory


def test_one_worker_keeps_its_metrics_in_memory(database_url: str, tmp_path: Path) -> None:
    """`serve` with one worker drops an inherited PROMETHEUS_MULTIPROC_DIR: nothing is written there,
    nothing stale is summed, and /metrics counts this process's requests."""
    inherited = tmp_path / "inherited"
    inherited.mkdir()
    env = {**server_env(database_url), "PROMETHEUS_MULTIPROC_DIR": str(inherited)}
    server = start_server(env, tmp_path, workers=1)
    try:
        for _ in range(5):
            assert httpx.get(server.base_url + "/health", timeout=30).status_code == 200
        assert value(scrape(server.base_url), "callstats_http_requests_total", **HEALTH) == 5
    finally:
        server.stop()
    assert list(inherited.iterdir()) == []
