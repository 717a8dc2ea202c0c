"""Event-to-stream latency with many open streams: post an event, time until every stream delivers it.

    .venv/bin/python -m bench.stream_latency                       # 100 streams, SQLite, one process
    .venv/bin/python -m bench.stream_latency --database-url postgresql://postgres@127.0.0.1:5432/bench \\
        --redis-url redis://127.0.0.1:6379/0 --campaigns 10

A `callstats serve` subprocess serves `--streams` streams (spread over `--campaigns` campaigns);
this process reads all of them on one event loop. Each round posts one call.started event to one
campaign and records, for every stream of that campaign, the time from the POST's answer (the
acknowledgement) to the stream's message carrying it. `--spacing` separates rounds; with 0 the
rounds are back to back and the stream's coalescing (at most one message per 150 ms) shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from callstats.accounts.service import create_key
from callstats.db import migrate
from callstats.db.engine import Database

HOST = "127.0.0.1"


@dataclass
class Campaign:
    """A campaign under test and what its streams have delivered."""

    campaign_id: str
    phones: list[str]
    # stream index -> calls_in_progress -> arrival time (monotonic)
    arrivals: list[dict[int, float]] = field(default_factory=list)
    acknowledged: dict[int, float] = field(default_factory=dict)
    sent: dict[int, float] = field(default_factory=dict)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(database_url: str, redis_url: str | None, log: Path) -> Iterator[str]:
    """`callstats serve` on a free port; its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSTATS_")}
    env.update(CALLSTATS_DATABASE_URL=database_url, CALLSTATS_LOG_LEVEL="warning")
    if redis_url:
        env["CALLSTATS_REDIS_URL"] = redis_url
    argv = [sys.executable, "-m", "callstats.cli", "serve", "--host", HOST, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base_url = f"http://{HOST}:{port}"
    try:
        _wait_ready(base_url, process, log)
        yield base_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit("server not ready within 60 s")


async def setup(http: httpx.AsyncClient, campaigns: int, contacts: int) -> list[Campaign]:
    """Campaigns with `contacts` contacts each."""
    made = []
    for index in range(campaigns):
        response = await http.post("/createCampaign", json={"name": f"latency {index}"})
        campaign_id = response.json()["data"]["campaign_id"]
        phones = [f"+1415{200 + index:03d}{line:04d}" for line in range(contacts)]
        response = await http.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}
        )
        assert response.json()["data"]["accepted"] == contacts, response.text
        made.append(Campaign(campaign_id, phones))
    return made


async def read_stream(http: httpx.AsyncClient, campaign: Campaign, index: int, opened: asyncio.Event) -> None:
    """Record when each calls_in_progress value first shows on this stream."""
    seen = campaign.arrivals[index]
    async with http.stream("GET", f"/streamCampaignStats/{campaign.campaign_id}") as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                arrived = time.monotonic()
                in_progress = json.loads(line[6:])["data"]["calls_in_progress"]
                seen.setdefault(in_progress, arrived)
                opened.set()


async def post_round(http: httpx.AsyncClient, campaign: Campaign, number: int) -> None:
    """Start the call of contact `number - 1`: calls_in_progress becomes `number`."""
    call_id = f"call-{uuid.uuid4().hex}"
    event = {
        "event_id": call_id,
        "campaign_id": campaign.campaign_id,
        "phone": campaign.phones[number - 1],
        "call_id": call_id,
        "type": "call.started",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    campaign.sent[number] = time.monotonic()
    response = await http.post("/recordCallEvents", json={"events": [event]})
    campaign.acknowledged[number] = time.monotonic()
    assert response.json()["data"]["applied"] == 1, response.text


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max, in milliseconds."""
    ordered = sorted(values)

    def at(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "p50": at(50),
        "p90": at(90),
        "p99": at(99),
        "max": 1000 * ordered[-1],
        "mean": 1000 * statistics.fmean(ordered),
    }


def delays(campaigns: list[Campaign]) -> tuple[list[float], list[float], int]:
    """Ack-to-stream and send-to-stream delays over every (event, stream) pair, and how many were missed."""
    from_ack, from_send, missed = [], [], 0
    for campaign in campaigns:
        for number, acknowledged in campaign.acknowledged.items():
            for seen in campaign.arrivals:
                arrived = next((t for value, t in seen.items() if value >= number), None)
                if arrived is None:
                    missed += 1
                    continue
                from_ack.append(max(0.0, arrived - acknowledged))
                from_send.append(arrived - campaign.sent[number])
    return from_ack, from_send, missed


async def measure(base_url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    """Open the streams, run the rounds, and summarize."""
    limits = httpx.Limits(max_connections=args.streams + 10, max_keepalive_connections=args.streams + 10)
    timeout = httpx.Timeout(30.0, read=120.0)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"x-api-key": key}, limits=limits, timeout=timeout
    ) as http:
        campaigns = await setup(http, args.campaigns, args.rounds)
        openings, readers = [], []
        for index in range(args.streams):
            campaign = campaigns[index % len(campaigns)]
            campaign.arrivals.append({})
            opened = asyncio.Event()
            openings.append(opened)
            readers.append(
                asyncio.create_task(read_stream(http, campaign, len(campaign.arrivals) - 1, opened))
            )
        await asyncio.wait_for(asyncio.gather(*(o.wait() for o in openings)), 60)
        await asyncio.sleep(1.0)  # past the burst of first reads the openings caused
        started = time.monotonic()
        for number in range(1, args.rounds + 1):
            for campaign in campaigns:
                await post_round(http, campaign, number)
                await asyncio.sleep(args.spacing)
        await asyncio.sleep(1.0)  # let the last messages arrive
        elapsed = time.monotonic() - started
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    from_ack, from_send, missed = delays(campaigns)
    return {
        "streams": args.streams,
        "campaigns": args.campaigns,
        "events": args.rounds * args.campaigns,
        "spacing_s": args.spacing,
        "deliveries": len(from_ack),
        "missed": missed,
        "ack_to_stream_ms": percentiles(from_ack),
        "send_to_stream_ms": percentiles(from_send),
        "within_250ms_of_ack": sum(1 for d in from_ack if d <= 0.25) / len(from_ack),
        "elapsed_s": elapsed,
    }


def main() -> None:
    """Parse the arguments, run one measurement, print it as JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--redis-url")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--campaigns", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40, help="events per campaign")
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between events")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/latency.db"
        migrate.upgrade(database_url)
        db = Database(database_url, pool_size=1)
        key = create_key(db, f"latency-{uuid.uuid4().hex[:8]}", "write").plaintext
        db.dispose()
        with server(database_url, args.redis_url, Path(scratch) / "server.log") as base_url:
            result = asyncio.run(measure(base_url, key, args))
    result["database"] = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    result["redis"] = bool(args.redis_url)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
