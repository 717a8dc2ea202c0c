"""Drill-down pages and exports on a 10,000,000-contact campaign (issue 12).

    .venv/bin/python -m bench.drilldown                          # SQLite and PostgreSQL, 10M contacts
    .venv/bin/python -m bench.drilldown --contacts 100000 --no-postgres --exports contacts-csv

The campaign is bench.dataset's history campaign (bulk-built with set-based SQL, never through HTTP;
contact i's story is picked by i % 20, so about 11.5M calls for 10M contacts), kept for the next run
(the SQLite file and the PostgreSQL database `callstats_drilldown`, each described by a JSON file in
--workdir, rebuilt when the generator or the schema changed). A `callstats serve`
subprocess per database (127.0.0.1, one uvicorn worker) then answers:

- pages: sequential GETs over one keep-alive connection (limit 100, the routes' default, and 1,000,
  the most a page may hold), first pages and pages 90 % of the way down each list (cursors built with
  callstats.pages.encode_cursor for the row there, which is what a client holds after paging that far),
  for each filter of getContacts and getCalls, and getContact of one contact; each answer's first row
  is checked against the data set's rule;
- exports: each asked export streamed whole, its rows counted (lines less the CSV header), rows/s from
  the first request byte to the last response byte, the server's RSS sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from bench.dataset import (
    GENERATOR_VERSION,
    T0_MS,
    DataSet,
    add_history_campaign,
    cached_sqlite,
    close_loader,
    finish,
    fresh_postgres,
    open_dataset,
    schema_head,
)
from bench.servers import Fleet, Server, exit_on_signals
from bench.timeseries_latency import percentile
from callstats.config import sqlalchemy_url
from callstats.db.engine import Database
from callstats.pages import encode_cursor
from callstats.reports import queries
from callstats.reports.queries import CallFilter, ContactFilter
from callstats.reports.service import EXPORT_CHUNK_ROWS
from callstats.stats.response import iso_utc

PG_DATABASE = "callstats_drilldown"
LABEL = "drilldown"
EXPORTS = ("contacts-csv", "contacts-ndjson", "calls-csv", "calls-ndjson")
REFERENCE_ROWS = 2_000_000


@dataclass(frozen=True)
class Case:
    """One request shape: a path under the campaign, its query, and a check of the answer's data."""

    name: str
    path: str
    params: dict[str, str]
    check: Callable[[Any], bool]
    paged: bool = True  # timed at limit 100 and 1,000; else once, without a limit


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=10_000_000, help="contacts in the campaign")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="admin URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per case")
    parser.add_argument(
        "--exports", default=",".join(EXPORTS), help=f"comma-separated of {', '.join(EXPORTS)}"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/callstats-drilldown"))
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_postgres(admin_url: str, contacts: int, meta: Path) -> DataSet:
    """The PostgreSQL database holding the history campaign of `contacts` contacts: the one described by
    `meta` when it was built by this generator on this schema and still holds its campaign, else a
    fresh one (the bench only reads it)."""
    wanted = {"version": GENERATOR_VERSION, "schema": schema_head(), "sizes": {LABEL: contacts}}
    if meta.exists() and (saved := json.loads(meta.read_text()))["wanted"] == wanted:
        data = DataSet(**saved["data"])
        if _holds_campaign(data):
            return data
    engine, data = open_dataset(fresh_postgres(admin_url, PG_DATABASE))
    add_history_campaign(engine, data, LABEL, contacts)
    finish(engine)
    close_loader(engine)
    meta.write_text(json.dumps({"wanted": wanted, "data": asdict(data)}))
    return data


def _holds_campaign(data: DataSet) -> bool:
    try:
        engine = create_engine(sqlalchemy_url(data.url))
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM campaigns WHERE id = :id")
            found = conn.execute(query, {"id": data.campaigns[LABEL]}).scalar_one()
        engine.dispose()
    except DBAPIError:
        return False
    return bool(found)


def _call_id(contact: int, attempt: int) -> str:
    return f"c{1_000_000_000_000 + contact}-{attempt}"


def _first(key: str, value: Any) -> Callable[[Any], bool]:
    return lambda data: bool(data) and data[0][key] == value


def _started_in(low: str, high: str) -> Callable[[Any], bool]:
    """The first row started in [low, high] (ISO 8601 UTC strings of one width compare as times)."""
    return lambda data: bool(data) and low <= data[0]["started_at"] <= high


def cases(data: DataSet) -> list[Case]:
    """Every page shape timed, with the rule its first row must follow (bench.dataset's i % 20 mix)."""
    base, size = data.first_contact[LABEL], data.sizes[LABEL]
    deep = base + (size * 9 // 10) // 20 * 20  # i % 20 == 0: answered on the first call, completed
    contacts_path, calls_path = "/getContacts/{cid}", "/getCalls/{cid}"
    after = encode_cursor(deep, "")
    # getCalls is newest first; 90 % down is a first call of contact i = size / 10 (started T0 + i s).
    early = base + (size // 10) // 20 * 20
    before = encode_cursor(T0_MS + (early - base) * 1000, _call_id(early, 1))
    # a valid US number (exchange 200-999 of area code 212 holds contacts i < 8,000,000): 80 % deep
    by_phone = base + max(0, min(size * 8 // 10, 8_000_000) // 20 * 20 - 20)
    phone = str(2122000000 + (by_phone - base))
    cursor_at = iso_utc(T0_MS + (early - base) * 1000) or ""
    return [
        Case("getContacts, first page", contacts_path, {}, _first("contact_id", base)),
        Case("getContacts, 90 % deep", contacts_path, {"cursor": after}, _first("contact_id", deep + 1)),
        Case(
            "getContacts state=failed, first", contacts_path, {"state": "failed"}, _first("state", "failed")
        ),
        Case(
            "getContacts state=failed, 90 % deep",
            contacts_path,
            {"state": "failed", "cursor": after},
            _first("contact_id", deep + 14),
        ),
        Case(
            "getContacts last_outcome=busy, 90 % deep",
            contacts_path,
            {"last_outcome": "busy", "cursor": after},
            _first("contact_id", deep + 14),
        ),
        Case(
            "getContacts state=pending&last_outcome=voicemail, 90 % deep",
            contacts_path,
            {"state": "pending", "last_outcome": "voicemail", "cursor": after},
            _first("contact_id", deep + 18),
        ),
        Case(
            "getContacts phone=(national form)",
            contacts_path,
            {"phone": f"({phone[:3]}) {phone[3:6]}-{phone[6:]}"},
            _first("contact_id", by_phone),
        ),
        Case(
            "reference: getCampaign (one row by key)",
            "/getCampaign/{cid}",
            {},
            lambda d: d["campaign_id"] == data.campaigns[LABEL],
            paged=False,
        ),
        Case(
            f"getContact {deep}",
            f"/getContact/{{cid}}/{deep}",
            {},
            lambda d: d["contact_id"] == deep,
            paged=False,
        ),
        Case("getCalls, first page", calls_path, {}, lambda d: len(d) > 0),
        Case("getCalls, 90 % deep", calls_path, {"cursor": before}, _started_in("", cursor_at)),
        Case(
            "getCalls outcome=busy, 90 % deep",
            calls_path,
            {"outcome": "busy", "cursor": before},
            lambda d: _started_in("", cursor_at)(d) and d[0]["outcome"] == "busy",
        ),
        Case(
            "getCalls from/to (one hour), first",
            calls_path,
            {"from": "2024-01-16T10:00:00Z", "to": "2024-01-16T11:00:00Z"},
            _started_in("2024-01-16T10:00:00Z", "2024-01-16T10:59:59Z"),
        ),
    ]


def _timed(
    http: httpx.Client, url: str, params: dict[str, str], count: int, check: Callable[[Any], bool]
) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = http.get(url, params=params)
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or not check(response.json()["data"]):
            raise SystemExit(f"{url} {params}: {response.status_code} {response.text[:300]}")
        times.append(1000 * elapsed)
    return times


def measure_pages(server: Server, data: DataSet, args: argparse.Namespace) -> list[dict[str, Any]]:
    """p50 and p99 of every case at limit 100 and 1,000 (getContact has no limit)."""
    rows = []
    campaign_id = data.campaigns[LABEL]
    with httpx.Client(base_url=server.base_url, headers={"x-api-key": data.api_key}, timeout=60) as http:
        for case in cases(data):
            url = case.path.format(cid=campaign_id)
            limits = [100, 1000] if case.paged else [None]
            for limit in limits:
                params = case.params if limit is None else {**case.params, "limit": str(limit)}
                _timed(http, url, params, args.warmup, case.check)
                times = _timed(http, url, params, args.requests, case.check)
                rows.append(
                    {
                        "case": case.name,
                        "limit": limit or "-",
                        "p50": percentile(times, 50),
                        "p99": percentile(times, 99),
                        "n": len(times),
                    }
                )
                _log(f"  {case.name} limit {limit}: p50 {rows[-1]['p50']:.2f} ms")
    return rows


class RssSampler(threading.Thread):
    """The server's RSS every 0.2 s while an export streams: first sample and peak, in MiB."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server, self.samples, self.done = server, [server.memory_mb()], threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.samples.append(self.server.memory_mb())


def measure_export(server: Server, data: DataSet, name: str) -> dict[str, Any]:
    """Stream one export whole: rows, seconds, rows/s, MiB, and the server's RSS at start and peak."""
    kind, fmt = name.split("-")
    route = "/exportContacts/" if kind == "contacts" else "/exportCalls/"
    sampler = RssSampler(server)
    sampler.start()
    lines = size = 0
    started = time.perf_counter()
    with httpx.stream(
        "GET",
        server.base_url + route + data.campaigns[LABEL],
        params={"format": fmt},
        headers={"x-api-key": data.api_key},
        timeout=600,
    ) as response:
        if response.status_code != 200:
            raise SystemExit(f"{name}: {response.status_code}")
        for chunk in response.iter_raw(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
    elapsed = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    rows = lines - (1 if fmt == "csv" else 0)
    _log(f"  {name}: {rows:,} rows in {elapsed:.1f} s")
    return {
        "export": name,
        "rows": rows,
        "seconds": elapsed,
        "rate": rows / elapsed,
        "mib": size / 2**20,
        "rss_start": sampler.samples[0],
        "rss_peak": max(sampler.samples),
    }


def expected_rows(data: DataSet, kind: str) -> int:
    """Contacts, or calls: contact i makes no call if i % 20 == 19, two if 13 <= i % 20 <= 16, else one."""
    size = data.sizes[LABEL]
    if kind == "contacts":
        return size
    per_story = [0 if m == 19 else 2 if 13 <= m <= 16 else 1 for m in range(20)]
    return size // 20 * sum(per_story) + sum(per_story[: size % 20])


def page_table(results: list[dict[str, Any]]) -> str:
    """The page timings as a markdown table."""
    lines = ["| database | request | limit | p50 ms | p99 ms |", "| --- | --- | ---: | ---: | ---: |"]
    for row in results:
        lines.append(
            f"| {row['database']} | {row['case']} | {row['limit']} | {row['p50']:.2f} | {row['p99']:.2f} |"
        )
    return "\n".join(lines)


def export_table(results: list[dict[str, Any]]) -> str:
    """The export runs as a markdown table."""
    lines = [
        "| database | export | rows | MiB | seconds | rows/s | server RSS start / peak MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results:
        served = not row["export"].startswith("reference")
        mib = f"{row['mib']:,.0f}" if served else "-"
        rss = f"{row['rss_start']:.0f} / {row['rss_peak']:.0f}" if served else "-"
        lines.append(
            f"| {row['database']} | {row['export']} | {row['rows']:,} | {mib} "
            f"| {row['seconds']:.1f} | {row['rate']:,.0f} | {rss} |"
        )
    return "\n".join(lines)


def reference_read(data: DataSet, kind: str, rows: int = REFERENCE_ROWS) -> dict[str, Any]:
    """The export's own reads without encoding or HTTP: its first `rows` rows by keyset pages of
    EXPORT_CHUNK_ROWS through reports/queries.py in this process, rows/s (the floor an export sits on,
    measured in the same minutes as the export on the same machine)."""
    db = Database(data.url, pool_size=1)
    campaign_id, read, started = data.campaigns[LABEL], 0, time.perf_counter()
    with db.read() as conn:
        key: Any = None
        while read < rows:
            if kind == "contacts":
                page = queries.contact_page(conn, campaign_id, ContactFilter(), key or 0, EXPORT_CHUNK_ROWS)
                key = page[-1][0] if page else None
            else:
                page = queries.call_page(conn, campaign_id, CallFilter(), key, EXPORT_CHUNK_ROWS)
                key = (page[-1][4], page[-1][0]) if page else None
            read += len(page)
            if len(page) < EXPORT_CHUNK_ROWS:
                break
    elapsed = time.perf_counter() - started
    db.dispose()
    _log(f"  reference read of {kind}: {read:,} rows in {elapsed:.1f} s")
    return {"export": f"reference: {kind} rows read, not encoded", "rows": read, "seconds": elapsed,
            "rate": read / elapsed, "mib": 0.0, "rss_start": 0.0, "rss_peak": 0.0}  # fmt: skip


def run_database(
    servers: Fleet, name: str, data: DataSet, args: argparse.Namespace
) -> tuple[list[Any], list[Any]]:
    """Serve one data set, time its pages, stream its exports."""
    server = servers.callstats(f"drilldown-{name.lower()}", data.url, None, "100000000/second")
    _log(f"measuring {name} pages")
    pages = [{**row, "database": name} for row in measure_pages(server, data, args)]
    exports = []
    for export in filter(None, args.exports.split(",")):
        row = {**measure_export(server, data, export), "database": name}
        if row["rows"] != expected_rows(data, export.split("-")[0]):
            raise SystemExit(
                f"{name} {export}: {row['rows']:,} rows, not {expected_rows(data, export.split('-')[0]):,}"
            )
        exports.append(row)
        kind = export.split("-")[0]
        if not any(e["export"].startswith(f"reference: {kind}") for e in exports):
            exports.append({**reference_read(data, kind), "database": name})
    server.stop()
    return pages, exports


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the data sets, serve them, print the two markdown tables."""
    args = _args(argv)
    exit_on_signals()
    args.workdir.mkdir(parents=True, exist_ok=True)
    pages: list[Any] = []
    exports: list[Any] = []
    loads = [Path("/proc/loadavg").read_text().split()[0]]
    with Fleet(args.workdir / "logs") as servers:
        for name in [
            n for n, skip in (("SQLite", args.no_sqlite), ("PostgreSQL", args.no_postgres)) if not skip
        ]:
            started = time.monotonic()
            _log(f"building {name} data set ({args.contacts:,} contacts)")
            if name == "SQLite":
                data = cached_sqlite(args.workdir / f"drilldown-{args.contacts}.db", {LABEL: args.contacts})
            else:
                meta = args.workdir / f"postgres-{args.contacts}.json"
                data = build_postgres(args.postgres, args.contacts, meta)
            _log(f"  ready in {time.monotonic() - started:.0f} s")
            found_pages, found_exports = run_database(servers, name, data, args)
            pages += found_pages
            exports += found_exports
            loads.append(Path("/proc/loadavg").read_text().split()[0])
    print(page_table(pages))
    print()
    print(export_table(exports))
    print(
        f"\n{args.requests} timed requests per row after {args.warmup} warm-up requests, one keep-alive "
        f"connection, one uvicorn worker; load average (1 min) at start and after each database: "
        f"{', '.join(loads)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
