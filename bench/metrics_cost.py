"""`python -m bench.metrics_cost --before-src DIR`: the hot routes before and after /metrics.

The same measurement as bench/access_log.py (one SQLite data set; stats reads with wrk -c32 then
-c1, recordCallEvents with one event per request from 1 then 32 clients; every mode once per round,
in alternating order), between two servers running at once, one uvicorn worker each, access log on
(the shipped set-up): `before`, callstats from another source tree (DIR, the `src` folder of the
commit before the metrics, e.g. `git archive 45647c6 src | tar -x -C /tmp/before` then
`--before-src /tmp/before/src`), and `after`, this tree. The table goes to stdout and
bench/results/metrics-cost.md; docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import access_log, wrk
from bench.dataset import DataSet
from bench.report import load_average, machine, table
from bench.servers import HOST, VENV_BIN, Fleet, Server, exit_on_signals, free_port

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("before", "after")


def start(fleet: Fleet, mode: str, data: DataSet, before_src: Path) -> Server:
    """The server of one mode: this tree's, or (before) the one in `before_src`, first on the path."""
    port = free_port()
    env = {
        "CALLSTATS_DATABASE_URL": data.url,
        "CALLSTATS_STATS_RATE_LIMIT": access_log.RATE_LIMIT,
        "CALLSTATS_LOG_LEVEL": "warning",
    }
    if mode == "before":
        env["PYTHONPATH"] = str(before_src)
    argv = [str(VENV_BIN / "python"), "-m", "callstats.cli", "serve", "--host", HOST, "--port", str(port)]
    return fleet.start(f"metrics-{mode}", argv, env, port, "/health")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__)
    parser.add_argument("--before-src", required=True, type=Path, help="the src folder of the commit before")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; every mode runs once in each")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each wrk run")
    parser.add_argument("--workdir", default="/tmp/callstats-bench", help="the data set and server logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run it; print the table (and write it to bench/results/metrics-cost.md)."""
    args = _args(argv)
    if not (args.before_src / "callstats" / "app.py").is_file():
        raise SystemExit(f"{args.before_src} holds no callstats package (give the src folder)")
    exit_on_signals()
    started, clock, load_before = datetime.now(UTC), time.monotonic(), load_average()
    wrk.ensure_wrk()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print("data set", file=sys.stderr, flush=True)
    data = access_log.build(work / "metrics-cost.db", args.rounds, pool=20_000, modes=MODES)
    with Fleet(work / "logs") as fleet:
        servers = {mode: start(fleet, mode, data, args.before_src) for mode in MODES}
        rows = access_log.reads(servers, data, args.rounds, args.seconds, _shown)
        rows += access_log.writes(servers, data, args.rounds, args.seconds, _shown)
    command = " ".join(["python -m bench.metrics_cost", *(argv if argv is not None else sys.argv[1:])])
    notes = [
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}, {machine()}, Python {sys.version.split()[0]}",
        f"`.venv/bin/{command}`, {time.monotonic() - clock:.0f} s;"
        f" load average (1 min) {load_before} before, {load_average()} after",
        "ratios are medians of per-round ratios to the `before` server; other figures: medians over rounds",
    ]
    page = "\n".join([table(rows), "", *[f"- {note}" for note in notes], ""])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "metrics-cost.md").write_text(page)
    print(page)
    return 0


def _shown(mode: str) -> str:
    return "without /metrics" if mode == "before" else "with /metrics"


if __name__ == "__main__":
    raise SystemExit(main())
