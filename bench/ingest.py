"""Writes through the API: recordCallEvents under wrk, addContacts CSV imports with httpx."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import httpx
from sqlalchemy import text

from bench import wrk
from bench.dataset import DataSet
from bench.servers import Server
from callstats.db.engine import Database
from callstats.stats.reconcile import live_differences


@dataclass(frozen=True)
class IngestResult:
    """One recordCallEvents run: events the server applied per second, and checks."""

    answered: int  # events in responses that came back within wrk's run, all "applied"
    stored: int  # applied events stored, including requests still in flight when wrk stopped
    seconds: float  # from the first stored event's arrival to the last one's
    p99_ms: float
    bad_responses: int
    reconciled: bool
    server_cpu_s: float  # the callstats process only (not PostgreSQL's)

    @property
    def per_second(self) -> float:
        """Applied events per second, as the server stored them."""
        return self.stored / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        """Server CPU time per stored event, in microseconds."""
        return self.server_cpu_s / self.stored * 1e6 if self.stored else 0.0


def record_events(
    server: Server,
    data: DataSet,
    label: str,
    per_request: int,
    seconds: float,
    connections: int = 32,
    by_phone: bool = False,
) -> IngestResult:
    """Drive recordCallEvents on one campaign for `seconds`, then check the database agrees.

    Events name their contact by contact_id, or with `by_phone` by its E.164 phone (the pending
    contacts' phones of bench/dataset.py), which the server looks up in the campaign.
    """
    args = [
        data.campaigns[label],
        data.api_key,
        str(data.first_contact[label]),
        str(data.sizes[label]),
        str(per_request),
        "phone" if by_phone else "contact_id",
    ]
    cpu_before = server.cpu_seconds()
    result = wrk.run(server.base_url + "/", seconds, connections, "events.lua", args=args, timeout_s=30)
    server.wait_idle()
    cpu = server.cpu_seconds() - cpu_before
    stored, span_ms, reconciled = stored_events(data, label)
    ingest = IngestResult(
        answered=result.extra["ok"] * per_request,
        stored=stored,
        seconds=span_ms / 1000,
        p99_ms=result.p99_ms,
        bad_responses=result.extra["bad"] + result.errors,
        reconciled=reconciled,
        server_cpu_s=cpu,
    )
    print(
        f"  {server.name} {label}: {ingest.per_second:,.0f} events/s ({stored:,} stored in"
        f" {ingest.seconds:.1f} s; {ingest.answered:,} answered within wrk's {result.seconds:.1f} s,"
        f" p99 {ingest.p99_ms:.1f} ms/request), bad {ingest.bad_responses}, reconciled {reconciled}",
        file=sys.stderr,
        flush=True,
    )
    return ingest


def stored_events(data: DataSet, label: str) -> tuple[int, int, bool]:
    """Applied events stored for the campaign, the span of their arrival (ms), and a reconcile check."""
    db = Database(data.url, pool_size=1)
    try:
        with db.read() as conn:
            stored, first, last = conn.execute(
                text(
                    "SELECT count(*), min(received_at), max(received_at) FROM call_events"
                    " WHERE campaign_id = :cid AND effect = 'applied'"
                ),
                {"cid": data.campaigns[label]},
            ).one()
        found = live_differences(db, data.campaigns[label])
        return int(stored), int(last - first) if stored else 0, found == []
    finally:
        db.dispose()


def csv_bodies(total: int, per_request: int) -> list[bytes]:
    """CSV bodies of valid, distinct US numbers (with a name and one metadata column)."""
    bodies = []
    for start in range(0, total, per_request):
        rows = [
            f"+1212{2_000_000 + i},Contact {i},{i % 7}" for i in range(start, min(total, start + per_request))
        ]
        bodies.append(("phone,name,segment\n" + "\n".join(rows) + "\n").encode())
    return bodies


@dataclass(frozen=True)
class ImportResult:
    """One addContacts import: contacts accepted per second, and checks."""

    accepted: int
    seconds: float
    total_contacts: int

    @property
    def per_second(self) -> float:
        """Accepted contacts per second."""
        return self.accepted / self.seconds if self.seconds else 0.0


async def _import(server: Server, data: DataSet, label: str, bodies: list[bytes], parallel: int) -> int:
    queue = list(reversed(bodies))
    accepted = 0
    url = f"{server.base_url}/addContacts/{data.campaigns[label]}"
    headers = {"x-api-key": data.api_key, "content-type": "text/csv"}

    async def uploader(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while queue:
            response = await client.post(url, content=queue.pop(), headers=headers)
            response.raise_for_status()
            accepted += int(response.json()["data"]["accepted"])

    async with httpx.AsyncClient(timeout=300) as client:
        await asyncio.gather(*(uploader(client) for _ in range(parallel)))
    return accepted


def import_contacts(
    server: Server, data: DataSet, label: str, total: int, per_request: int = 10_000, parallel: int = 2
) -> ImportResult:
    """Import `total` contacts as CSV through addContacts, `parallel` requests at a time."""
    bodies = csv_bodies(total, per_request)
    started = time.perf_counter()
    accepted = asyncio.run(_import(server, data, label, bodies, parallel))
    seconds = time.perf_counter() - started
    stats = httpx.get(
        f"{server.base_url}/getCampaignStats/{data.campaigns[label]}", headers={"x-api-key": data.api_key}
    ).json()
    result = ImportResult(accepted, seconds, int(stats["data"]["total_contacts"]))
    print(
        f"  import: {result.per_second:,.0f} contacts/s ({accepted:,} in {seconds:.1f} s),"
        f" stats total {result.total_contacts:,}",
        file=sys.stderr,
        flush=True,
    )
    return result
