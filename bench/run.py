"""`python -m bench.run [--quick]`: build the data sets, start the servers, measure, print one table.

Every server is a subprocess on 127.0.0.1, stopped at the end whatever happens. The table
goes to stdout and to bench/results/latest.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import carrier_callbacks, dataset, figures, wrk
from bench.dataset import DataSet
from bench.plan import FULL, QUICK, Plan
from bench.report import Row, document, load_average, table
from bench.servers import Fleet, Server, exit_on_signals

RESULTS = Path(__file__).resolve().parent / "results"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs (under two minutes)")
    parser.add_argument(
        "--workdir", default="/tmp/callstats-bench", help="data sets (cached) and server logs"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an admin URL; the bench (re)creates database callstats_bench next to it",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for the PostgreSQL server")
    parser.add_argument(
        "--rate-limit",
        default="100000000/second",
        help="CALLSTATS_STATS_RATE_LIMIT for every server (high, so nothing is refused)",
    )
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_writes(path: Path, plan: Plan) -> DataSet:
    """A fresh SQLite file with pending campaigns to call and an empty one to import into."""
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    engine, data = dataset.open_dataset(dataset.sqlite_url(path))
    dataset.add_pending_campaign(engine, data, "batch", plan.pool)
    dataset.add_pending_campaign(engine, data, "single", plan.pool)
    dataset.add_pending_campaign(engine, data, "phone", plan.pool)
    dataset.add_pending_campaign(engine, data, "callbacks", plan.pool)
    dataset.add_pending_campaign(engine, data, "import", 0)
    dataset.finish(engine)
    dataset.check_consistent(engine, data, max_size=plan.pool)
    dataset.close_loader(engine)
    return data


def build_postgres(admin_url: str, plan: Plan) -> DataSet:
    """A fresh PostgreSQL database: one campaign to read, pending ones to call."""
    engine, data = dataset.open_dataset(dataset.fresh_postgres(admin_url, "callstats_bench"))
    dataset.add_history_campaign(engine, data, "read", plan.pg_size)
    dataset.add_event_history(engine, data, "read")
    dataset.add_pending_campaign(engine, data, "batch", plan.pool)
    dataset.add_pending_campaign(engine, data, "single", plan.pool)
    dataset.add_pending_campaign(engine, data, "callbacks", plan.pool)
    dataset.finish(engine)
    dataset.check_consistent(engine, data, max_size=max(100_000, plan.pool))
    dataset.close_loader(engine)
    return data


def stats_body(server: Server, data: DataSet, label: str) -> bytes:
    """A real getCampaignStats answer, checked to count the campaign's contacts."""
    response = httpx.get(
        f"{server.base_url}/getCampaignStats/{data.campaigns[label]}", headers={"x-api-key": data.api_key}
    )
    response.raise_for_status()
    if response.json()["data"]["total_contacts"] != data.sizes[label]:
        raise SystemExit(f"{server.name}: campaign {label} does not show {data.sizes[label]} contacts")
    return response.content


def measure_all(servers: Fleet, args: argparse.Namespace, plan: Plan, work: Path) -> list[Row]:
    """Start every server, then run every measurement; the rows of the table."""
    _log("data sets")
    reads = dataset.cached_sqlite(work / f"reads-{plan.name}.db", plan.read_sizes)
    writes = build_writes(work / "writes.db", plan)
    pg = build_postgres(args.postgres, plan)
    _log("servers")
    ours = servers.callstats("sqlite-reads", reads.url, None, args.rate_limit)
    for label in plan.read_sizes:
        stats_body(ours, reads, label)
    body_file = work / "stats-body.json"
    body_file.write_bytes(stats_body(ours, reads, plan.naive_labels[0]))
    raw = servers.asgi("raw-asgi", "bench.raw_app:app", {"BENCH_RAW_BODY_FILE": str(body_file)})
    naive = servers.asgi("naive-recompute", "bench.naive_app:app", {"BENCH_DATABASE_URL": reads.url})
    pg_server = servers.callstats("postgres-redis", pg.url, args.redis, args.rate_limit)
    stats_body(pg_server, pg, "read")
    writer = servers.callstats("sqlite-writes", writes.url, None, args.rate_limit)
    rows = figures.reads(plan, raw, ours, reads, naive, pg_server, pg)
    rows += figures.memory(plan, ours)
    rows += figures.ingestion(plan, writer, writes, pg_server, pg)
    rows += figures.ingestion_by_phone(plan, writer, writes)
    rows += carrier_callbacks.rows(plan, [("SQLite", writer, writes), ("PostgreSQL", pg_server, pg)], work)
    rows += figures.imports(plan, writer, writes)
    figures.forget_rate_limits(args.redis, pg)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when it completed (targets missed are reported, not fatal)."""
    args = _args(argv)
    exit_on_signals()
    plan = QUICK if args.quick else FULL
    started, clock = datetime.now(UTC), time.monotonic()
    command = "make bench-quick" if args.quick else "make bench"
    wrk.ensure_wrk()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    with Fleet(work / "logs") as servers:
        rows = measure_all(servers, args, plan, work)
    notes = [
        f"`{command}` = `.venv/bin/python -m bench.run{' --quick' if args.quick else ''}`"
        f" ({shlex.join(sys.argv[1:]) or 'default options'}), {time.monotonic() - clock:.0f} s in all",
        f"load average (1 min) before {load_before}, after {load_average()}: other work on the machine"
        " shows up as noise, which the per-round ratios are meant to cancel",
        f"CALLSTATS_STATS_RATE_LIMIT={args.rate_limit} on every server; wrk -t1 on 127.0.0.1",
        *figures.NOTES,
    ]
    page = document(rows, command, notes, started)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(page)
    print(table(rows))
    print()
    print("\n".join(f"- {note}" for note in notes))
    print(f"\n(written to {RESULTS / 'latest.md'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
