"""Response time of GET /getCampaignTimeseries on campaigns of 10,000 and 1,000,000 calls spread over 30 days.

    .venv/bin/python -m bench.timeseries_latency            # SQLite and PostgreSQL, 10k and 1M calls
    .venv/bin/python -m bench.timeseries_latency --sizes 10000 --no-postgres

Each data set is bulk-built with set-based SQL (never through HTTP) in a database prepared with
`callstats migrate` and `callstats keys create --account bench --json`: contact i gets one call,
started at T0 + i * 30 days / N (answered for 6 in 10, else busy, no_answer, voicemail or failed,
which is final since max_attempts is 1). Counters, histograms and the per-minute
`campaign_timeseries` rows are summed from those call rows by `bench.dataset`, so they agree with
them; `reconcile` checks campaigns up to 100,000 calls, and for every campaign the time series'
totals must equal getCampaignStats. A `callstats serve` subprocess per database (127.0.0.1 only)
then answers sequential requests over one keep-alive connection: interval=hour and interval=day
over the 30 days, interval=minute over one day, in alternating rounds after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from bench.dataset import (
    _CALL_COLUMNS,
    _CONTACT_COLUMNS,
    _COUNTERS_INSERT,
    CALLSTATS,
    DataSet,
    _extras,
    _insert,
    _new_campaign,
    check_consistent,
    close_loader,
    finish,
    fresh_postgres,
    loader_engine,
    migrate,
    sqlite_url,
)
from bench.servers import Fleet, Server, exit_on_signals

T0 = datetime(2024, 2, 1, tzinfo=UTC)  # after bench.dataset's campaign creation time
DAYS = 30
SPAN_MS = DAYS * 86_400_000
T0_MS = int(T0.timestamp() * 1000)
PG_DATABASE = "callstats_tsbench"

# Contact i, m = i % 10: 0-5 answered (completed), 6-9 busy / no_answer / voicemail / failed (failed).
_M = "(i % 10)"
_S = f"({T0_MS} + (i * {SPAN_MS}) / CAST(:n AS BIGINT))"
_D = "(20 + i % 241)"
_E = f"({_S} + 5000 + CASE WHEN {_M} <= 5 THEN {_D} * 1000 ELSE 0 END)"
_OUTCOME = (
    f"CASE WHEN {_M} <= 5 THEN 'answered' WHEN {_M} = 6 THEN 'busy' WHEN {_M} = 7 THEN 'no_answer' "
    f"WHEN {_M} = 8 THEN 'voicemail' ELSE 'failed' END"
)
_CONTACTS = f"""
SELECT :base + i, :cid, :aid, '+1' || CAST(2122000000 + i AS TEXT), NULL, NULL,
  CASE WHEN {_M} <= 5 THEN 'completed' ELSE 'failed' END, 1, NULL, {_OUTCOME}, {_E}, {T0_MS}
FROM seq"""
_CALLS = f"""
SELECT :aid, 'c' || CAST(1000000000000 + :base + i AS TEXT) || '-1', :cid, :base + i, 1, 'ended',
  {_OUTCOME}, CASE WHEN {_M} <= 5 THEN {_D} ELSE 0 END,
  {_S}, CASE WHEN {_M} <= 5 THEN {_S} + 5000 END, {_E}
FROM seq"""


@dataclass(frozen=True)
class Case:
    """One request shape: an interval over a window, and how many buckets it must answer."""

    name: str
    interval: str
    start: datetime
    end: datetime
    buckets: int

    @property
    def params(self) -> dict[str, str]:
        """The query string."""
        return {
            "interval": self.interval,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "tz": "UTC",
        }


DAY15 = T0 + timedelta(days=14)
CASES = (
    Case("hour, 30 days", "hour", T0, T0 + timedelta(days=DAYS), DAYS * 24),
    Case("day, 30 days", "day", T0, T0 + timedelta(days=DAYS), DAYS),
    Case("minute, 1 day", "minute", DAY15, DAY15 + timedelta(days=1), 1440),
)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,1000000", help="calls per campaign, comma-separated")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="admin URL")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per case and campaign")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per case and campaign")
    parser.add_argument("--rounds", type=int, default=5, help="the timed requests are split in rounds")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/callstats-tsbench"))
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(url: str) -> DataSet:
    """`callstats migrate`, then `callstats keys create --account bench --json`, against `url`."""
    migrate(url)
    env = {**os.environ, "CALLSTATS_DATABASE_URL": url}
    out = subprocess.run(
        [str(CALLSTATS), "keys", "create", "--account", "bench", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    created = json.loads(out)
    return DataSet(url=url, api_key=created["key"], account_id=created["account_id"])


def add_spread_campaign(engine: Engine, data: DataSet, label: str, calls: int) -> None:
    """A campaign of `calls` contacts with one call each, spread evenly over 30 days, and its counters."""
    with engine.begin() as conn:
        params = _new_campaign(conn, data, label, calls, max_attempts=1)
        _insert(conn, "contacts", _CONTACT_COLUMNS, _CONTACTS, params)
        _insert(conn, "calls", _CALL_COLUMNS, _CALLS, params)
        conn.execute(text(_COUNTERS_INSERT), params)
        _extras(conn, params)


def build(url: str, sizes: list[int]) -> DataSet:
    """A migrated database with a key and one spread campaign per size, checked."""
    data = prepare(url)
    engine = loader_engine(url)
    try:
        for size in sizes:
            started = time.monotonic()
            add_spread_campaign(engine, data, f"{size:,} calls", size)
            _log(f"  built {size:,} calls in {time.monotonic() - started:.1f} s")
        finish(engine)
        check_consistent(engine, data, max_size=100_000)
    finally:
        close_loader(engine)
    return data


def minute_rows(url: str, campaign_id: str) -> dict[str, int]:
    """The campaign's campaign_timeseries rows: all of them, and those inside each case's window."""
    engine = loader_engine(url)
    counts: dict[str, int] = {}
    try:
        with engine.connect() as conn:
            sql = "SELECT count(*) FROM campaign_timeseries WHERE campaign_id = :cid"
            counts["all"] = conn.execute(text(sql), {"cid": campaign_id}).scalar_one()
            for case in CASES:
                window = {
                    "cid": campaign_id,
                    "lo": int(case.start.timestamp()) // 60,
                    "hi": int(case.end.timestamp()) // 60,
                }
                counts[case.name] = conn.execute(
                    text(sql + " AND minute >= :lo AND minute < :hi"), window
                ).scalar_one()
    finally:
        engine.dispose()
    return counts


def check_totals(http: httpx.Client, campaign_id: str, calls: int) -> None:
    """The series over all recorded days must sum to the campaign's own figures."""
    series = http.get(f"/getCampaignTimeseries/{campaign_id}", params={"interval": "day"}).json()["data"]
    stats = http.get(f"/getCampaignStats/{campaign_id}", params={"include": "attempts"}).json()["data"]
    totals, attempts = series["totals"], stats["attempts"]
    expected = {"calls_started": calls, **attempts["by_outcome"]}
    found = {name: totals[name] for name in expected}
    if found != expected or attempts["total"] != calls or totals["success_rate"] != stats["success_rate"]:
        raise SystemExit(f"time series totals {found} disagree with getCampaignStats {stats}")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = int(-(-len(ordered) * p // 100))
    return ordered[max(0, min(len(ordered) - 1, rank - 1))]


def timed(http: httpx.Client, campaign_id: str, case: Case, count: int, times: list[float]) -> int:
    """Send `count` requests, append their times in ms to `times`; the body size of the last one."""
    size = 0
    for _ in range(count):
        started = time.perf_counter()
        response = http.get(f"/getCampaignTimeseries/{campaign_id}", params=case.params)
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or len(response.json()["data"]["buckets"]) != case.buckets:
            raise SystemExit(f"{case.name}: {response.status_code} {response.text[:300]}")
        times.append(1000 * elapsed)
        size = len(response.content)
    return size


def measure(server: Server, data: DataSet, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every case on every campaign of `data`, in alternating rounds."""
    pairs = [(label, case) for label in data.campaigns for case in CASES]
    times: dict[tuple[str, str], list[float]] = {(label, case.name): [] for label, case in pairs}
    sizes: dict[tuple[str, str], int] = {}
    headers = {"x-api-key": data.api_key}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as http:
        for label, campaign_id in data.campaigns.items():
            check_totals(http, campaign_id, data.sizes[label])
        for label, case in pairs:
            timed(http, data.campaigns[label], case, args.warmup, [])
        per_round = -(-args.requests // args.rounds)
        for number in range(args.rounds):
            for label, case in pairs if number % 2 == 0 else reversed(pairs):
                key = (label, case.name)
                left = min(per_round, args.requests - len(times[key]))
                sizes[key] = timed(http, data.campaigns[label], case, left, times[key])
    rows = []
    for label, case in pairs:
        key = (label, case.name)
        rows.append(
            {
                "label": label,
                "calls": data.sizes[label],
                "case": case.name,
                "buckets": case.buckets,
                "kib": sizes[key] / 1024,
                "p50": percentile(times[key], 50),
                "p99": percentile(times[key], 99),
                "n": len(times[key]),
            }
        )
    return rows


def table(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    lines = [
        "| database | calls (over 30 days) | minute rows: campaign / in window | request | buckets "
        "| body KiB | p50 ms | p99 ms |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in results:
        lines.append(
            f"| {row['database']} | {row['calls']:,} | {row['rows_all']:,} / {row['rows_window']:,} "
            f"| {row['case']} | {row['buckets']:,} | {row['kib']:.0f} | {row['p50']:.1f} | {row['p99']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build the data sets, serve them, time the route, print a markdown table."""
    args = _args(argv)
    exit_on_signals()
    sizes = [int(size) for size in args.sizes.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    targets: list[tuple[str, str]] = []
    if not args.no_sqlite:
        path = args.workdir / "timeseries.db"
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        targets.append(("SQLite", sqlite_url(path)))
    if not args.no_postgres:
        targets.append(("PostgreSQL", fresh_postgres(args.postgres, PG_DATABASE)))
    results: list[dict[str, Any]] = []
    loads: list[str] = []
    with Fleet(args.workdir / "logs") as servers:
        for name, url in targets:
            _log(f"building {name} data set ({', '.join(f'{s:,}' for s in sizes)} calls)")
            data = build(url, sizes)
            rows = {label: minute_rows(url, cid) for label, cid in data.campaigns.items()}
            server = servers.callstats(f"timeseries-{name.lower()}", url, None, "100000000/second")
            _log(f"measuring {name}")
            loads.append(Path("/proc/loadavg").read_text().split()[0])
            for row in measure(server, data, args):
                counts = rows[row["label"]]
                row.update(database=name, rows_all=counts["all"], rows_window=counts[row["case"]])
                results.append(row)
            loads.append(Path("/proc/loadavg").read_text().split()[0])
            server.stop()
    print(table(results))
    print(
        f"\n{len(results) and results[0]['n']} timed requests per row after {args.warmup} warm-up "
        f"requests, one keep-alive connection, one uvicorn worker; "
        f"load average (1 min) before/after each database: {', '.join(loads)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
