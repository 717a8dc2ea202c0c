"""`python -m bench.access_log`: the hot routes with the access log off and on.

One SQLite data set (a 10,000-contact campaign to read, fresh pending campaigns to call), one
server per mode, both running at once: `callstats serve` with CALLSTATS_ACCESS_LOG=false and =true
(the shipped set-up: entries kept in memory, written as JSON lines in batches to stderr, here a
file). Each round runs
every mode once, in alternating order: stats reads (wrk -c32, then -c1) and recordCallEvents with
one event per request (one client, then 32), each run on a campaign of its own. The table goes
to stdout and bench/results/access-log.md; docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import dataset, wrk
from bench.dataset import DataSet
from bench.reads import Target, alternating_rounds
from bench.report import Row, load_average, machine, median, table
from bench.servers import HOST, VENV_BIN, Fleet, Server, exit_on_signals, free_port

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("off", "on")
WRITERS = (1, 32)  # recordCallEvents clients
RATE_LIMIT = "100000000/second"


def start(fleet: Fleet, mode: str, data: DataSet, work: Path) -> Server:
    """The server of one mode on the data set."""
    port = free_port()
    env = {
        "CALLSTATS_DATABASE_URL": data.url,
        "CALLSTATS_STATS_RATE_LIMIT": RATE_LIMIT,
        "CALLSTATS_LOG_LEVEL": "warning",
        "CALLSTATS_ACCESS_LOG": "false" if mode == "off" else "true",
    }
    argv = [str(VENV_BIN / "callstats"), "serve", "--host", HOST, "--port", str(port)]
    return fleet.start(f"access-{mode}", argv, env, port, "/health")


def build(path: Path, rounds: int, pool: int, modes: tuple[str, ...] = MODES) -> DataSet:
    """A fresh SQLite file: the read campaign, and a pending campaign per mode and ingestion run."""
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    engine, data = dataset.open_dataset(dataset.sqlite_url(path))
    dataset.add_history_campaign(engine, data, "read", 10_000)
    for label in (_label(mode, c, r) for mode in modes for c in WRITERS for r in range(rounds)):
        dataset.add_pending_campaign(engine, data, label, pool)
    dataset.finish(engine)
    dataset.check_consistent(engine, data, max_size=10_000)
    dataset.close_loader(engine)
    return data


def _label(mode: str, writers: int, round_number: int) -> str:
    return f"{mode}-c{writers}-r{round_number}"


def access_mode(mode: str) -> str:
    """How a row names a mode of this bench."""
    return f"access log {mode}"


def reads(
    servers: dict[str, Server],
    data: DataSet,
    rounds: int,
    seconds: float,
    shown: Callable[[str], str] = access_mode,
) -> list[Row]:
    """Stats reads, -c32 then -c1, every mode once per round; ratios to the first server's mode
    (bench/metrics_cost.py compares other modes the same way)."""
    baseline = next(iter(servers))
    path = f"/getCampaignStats/{data.campaigns['read']}"
    targets = [Target(mode, server, path, {"x-api-key": data.api_key}) for mode, server in servers.items()]
    rows = []
    for connections in (32, 1):
        print(f"stats reads, c{connections}", file=sys.stderr, flush=True)
        for target in targets:
            wrk.run(target.url, 1, connections, headers=target.headers)  # warm-up
        results = alternating_rounds(targets, rounds, seconds, connections)
        first = results[baseline]
        for mode in servers:
            runs = results[mode]
            ratio = median([r.rps / o.rps for r, o in zip(runs, first, strict=True) if o.rps])
            rows.append(
                Row(
                    "reads",
                    f"getCampaignStats, SQLite, 10,000 contacts, c{connections}, {shown(mode)}",
                    _figures(runs, [r.rps for r in runs], "req/s"),
                    baseline if mode == baseline else "",
                    "" if mode == baseline else f"{ratio:.0%} of {baseline}",
                )
            )
    return rows


def _figures(runs: list[wrk.WrkResult], rates: list[float], unit: str) -> str:
    """Medians over rounds: rate, p50, p99, server CPU per request."""
    return (
        f"{median(rates):,.0f} {unit}, p50 {median([r.p50_ms for r in runs]):.2f} ms,"
        f" p99 {median([r.p99_ms for r in runs]):.2f} ms,"
        f" server CPU {median([r.cpu_us_per_request for r in runs]):.0f} us/req"
    )


def _events_run(server: Server, data: DataSet, label: str, writers: int, seconds: float) -> wrk.WrkResult:
    args = [data.campaigns[label], data.api_key, str(data.first_contact[label]), str(data.sizes[label]), "1"]
    cpu_before = server.cpu_seconds()
    result = wrk.run(server.base_url + "/", seconds, writers, "events.lua", args=args, timeout_s=30)
    server.wait_idle()
    result = replace(result, server_cpu_s=server.cpu_seconds() - cpu_before)
    print(
        f"  {label:<14} {result.rps:>8.1f} req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
        f"  cpu {result.cpu_us_per_request:5.0f} us/req  bad {result.extra['bad'] + result.errors}",
        file=sys.stderr,
        flush=True,
    )
    return result


def writes(
    servers: dict[str, Server],
    data: DataSet,
    rounds: int,
    seconds: float,
    shown: Callable[[str], str] = access_mode,
) -> list[Row]:
    """recordCallEvents, one event per request, one client then 32; every mode once per round, in
    alternating order; ratios to the first server's mode."""
    modes = tuple(servers)
    baseline = modes[0]
    rows = []
    for writers in WRITERS:
        print(f"recordCallEvents, one event per request, c{writers}", file=sys.stderr, flush=True)
        results: dict[str, list[wrk.WrkResult]] = {mode: [] for mode in modes}
        for number in range(rounds):
            order = modes if number % 2 == 0 else modes[::-1]
            for mode in order:
                label = _label(mode, writers, number)
                results[mode].append(_events_run(servers[mode], data, label, writers, seconds))
        for mode in modes:
            runs = results[mode]
            ok_rps = [r.extra["ok"] / r.seconds for r in runs]
            first_rps = [r.extra["ok"] / r.seconds for r in results[baseline]]
            bad = sum(r.extra["bad"] + r.errors for r in runs)
            ratio = median([ours / first for ours, first in zip(ok_rps, first_rps, strict=True) if first])
            rows.append(
                Row(
                    "writes",
                    f"recordCallEvents, SQLite, one event per request, c{writers}, {shown(mode)}",
                    _figures(runs, ok_rps, "events/s") + (f", {bad} bad answers" if bad else ""),
                    baseline if mode == baseline else "",
                    "" if mode == baseline else f"{ratio:.0%} of {baseline}",
                )
            )
    return rows


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.access_log", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; every mode runs once in each")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each wrk run")
    parser.add_argument("--workdir", default="/tmp/callstats-bench", help="the data set and server logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run it; print the table (and write it to bench/results/access-log.md)."""
    args = _args(argv)
    exit_on_signals()
    started, clock, load_before = datetime.now(UTC), time.monotonic(), load_average()
    wrk.ensure_wrk()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print("data set", file=sys.stderr, flush=True)
    data = build(work / "access-log.db", args.rounds, pool=20_000)
    with Fleet(work / "logs") as fleet:
        servers = {mode: start(fleet, mode, data, work) for mode in MODES}
        rows = reads(servers, data, args.rounds, args.seconds)
        rows += writes(servers, data, args.rounds, args.seconds)
    logged = {mode: _access_lines(server) for mode, server in servers.items()}
    command = " ".join(["python -m bench.access_log", *(argv if argv is not None else sys.argv[1:])])
    notes = [
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}, {machine()}, Python {sys.version.split()[0]}",
        f"`.venv/bin/{command}`, {time.monotonic() - clock:.0f} s;"
        f" load average (1 min) {load_before} before, {load_average()} after",
        "access lines written: " + ", ".join(f"{mode} {count:,}" for mode, count in logged.items()),
        "ratios are medians of per-round ratios to the `off` server; other figures are medians over rounds",
    ]
    page = "\n".join([table(rows), "", *[f"- {note}" for note in notes], ""])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "access-log.md").write_text(page)
    print(page)
    return 0


def _access_lines(server: Server) -> int:
    """How many access lines the server wrote (the `off` server must write none)."""
    lines: list[dict[str, Any]] = []
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return sum(1 for line in lines if line.get("logger") == "callstats.access")


if __name__ == "__main__":
    raise SystemExit(main())
