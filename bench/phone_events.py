"""`python -m bench.phone_events [--quick]`: only the recordCallEvents-by-phone case of `bench.run`.

A fresh SQLite file with one pending campaign ("phone", the plan's pool of contacts), one
`callstats serve` on it, and wrk -c1 sending batches of 1,000 events that name their contacts by
phone. Prints the bench table's row; docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import dataset, figures, wrk
from bench.dataset import DataSet
from bench.plan import FULL, QUICK
from bench.report import load_average, table
from bench.servers import Fleet, exit_on_signals


def build(path: Path, pool: int) -> DataSet:
    """A fresh SQLite file with the one pending campaign the case calls."""
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    return dataset.one_pending_campaign(dataset.sqlite_url(path), "phone", pool)


def main(argv: list[str] | None = None) -> int:
    """Run the case once; 0 when it completed (a missed target is reported, not fatal)."""
    parser = argparse.ArgumentParser(prog="python -m bench.phone_events", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the quick plan's pool and duration")
    parser.add_argument("--workdir", default="/tmp/callstats-bench", help="data set and server log")
    parser.add_argument("--rate-limit", default="100000000/second", help="CALLSTATS_STATS_RATE_LIMIT")
    args = parser.parse_args(argv)
    exit_on_signals()
    plan = QUICK if args.quick else FULL
    wrk.ensure_wrk()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = build(work / "phone-events.db", plan.pool)
    before = load_average()
    with Fleet(work / "logs") as servers:
        writer = servers.callstats("sqlite-phone-events", data.url, None, args.rate_limit)
        rows = figures.ingestion_by_phone(plan, writer, data)
    print(table(rows))
    print(f"\nload average (1 min) before {before}, after {load_average()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
