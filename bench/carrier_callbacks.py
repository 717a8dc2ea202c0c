"""`python -m bench.carrier_callbacks [--quick]`: signed Twilio status callbacks, one per request.

The case of issue 11's Performance section (B6 in `bench.run`): a fresh database with one pending
campaign on SQLite and on PostgreSQL, one `callstats serve` on each, a Twilio carrier connection
made through createCarrierConnection, and wrk -c32 posting status callbacks in Twilio's real shape
(form-encoded, X-Twilio-Signature over the URL and the form) to the connection's webhook URL. Each
contact gets one call: `initiated`, `ringing`, then `completed` with AnsweredBy `human` and a
CallDuration; the three callbacks of a call leave one after another, so they may arrive in any
order, as they do from Twilio. Afterwards the campaign's counters are reconciled with its rows and
every callback stored must carry the verdict `applied`. Prints the bench table's rows;
docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from sqlalchemy import text

from bench import dataset, ingest, wrk
from bench.dataset import DataSet
from bench.plan import FULL, QUICK, Plan
from bench.report import Row, load_average, table, verdict
from bench.servers import Fleet, Server, exit_on_signals
from callstats.carriers.twilio import sign
from callstats.db.engine import Database

TARGET = 2_000  # callbacks per second, on each backend (issue 11)
TOKEN = "bench-twilio-auth-token-0123456789"
STAGES = ("initiated", "ringing", "completed")


@dataclass(frozen=True)
class CallbackResult:
    """One run: callbacks the server applied per second, and checks."""

    run: ingest.IngestResult
    verdicts: dict[str, int]

    @property
    def clean(self) -> bool:
        """Every response a 204, every stored callback applied, the counters reconciled."""
        applied_only = set(self.verdicts) <= {"applied"}
        return self.run.reconciled and not self.run.bad_responses and applied_only


def connection_url(server: Server, data: DataSet, label: str) -> str:
    """A Twilio connection made through the API; its webhook URL with the campaign in the query."""
    answer = httpx.post(
        server.base_url + "/createCarrierConnection",
        json={"provider": "twilio", "secret": TOKEN, "name": "bench"},
        headers={"x-api-key": data.api_key},
        timeout=30,
    )
    answer.raise_for_status()
    webhook: str = answer.json()["data"]["webhook_url"]
    return webhook + "?" + urlencode({"campaign_id": data.campaigns[label]})


def write_requests(path: Path, url: str, data: DataSet, label: str, calls: int) -> None:
    """`calls` calls' callbacks, signed as Twilio signs them, one request per line for callbacks.lua."""
    base = url.split("/webhooks/", 1)[0]
    target = url.removeprefix(base)
    with path.open("w") as out:
        for n in range(calls):
            phone = f"+1{2122000000 + n % data.sizes[label]}"
            for stage in STAGES:
                params = {
                    "CallSid": f"CA{n:032x}",
                    "AccountSid": "AC" + "0" * 32,
                    "From": "+14155550100",
                    "To": phone,
                    "Direction": "outbound-api",
                    "CallStatus": stage,
                    "Timestamp": f"Tue, 16 Jan 2024 09:00:{STAGES.index(stage) * 10:02d} +0000",
                    "SequenceNumber": str(STAGES.index(stage)),
                }
                if stage == "completed":
                    params |= {"CallDuration": "30", "AnsweredBy": "human"}
                out.write(f"{target}\t{sign(TOKEN, url, params)}\t{urlencode(params)}\n")


def callbacks(server: Server, data: DataSet, label: str, seconds: float, work: Path) -> CallbackResult:
    """Drive the webhook for `seconds` with 32 connections, then check the database agrees."""
    url = connection_url(server, data, label)
    requests_file = work / f"callbacks-{server.name}.tsv"
    write_requests(requests_file, url, data, label, min(data.sizes[label], int(seconds * TARGET)))
    cpu_before = server.cpu_seconds()
    result = wrk.run(server.base_url + "/", seconds, 32, "callbacks.lua", args=[str(requests_file)])
    server.wait_idle()
    cpu = server.cpu_seconds() - cpu_before
    _, _, reconciled = ingest.stored_events(data, label)
    stored, span_ms, verdicts = _callbacks_stored(data)
    run = ingest.IngestResult(
        answered=result.extra["ok"],
        stored=verdicts.get("applied", 0),
        seconds=span_ms / 1000,
        p99_ms=result.p99_ms,
        bad_responses=result.extra["bad"] + result.errors,
        reconciled=reconciled,
        server_cpu_s=cpu,
    )
    found = CallbackResult(run, verdicts)
    print(
        f"  {server.name}: {run.per_second:,.0f} callbacks/s ({stored:,} stored in {run.seconds:.1f} s;"
        f" p99 {run.p99_ms:.1f} ms), bad {run.bad_responses}, verdicts {found.verdicts},"
        f" reconciled {reconciled}",
        file=sys.stderr,
        flush=True,
    )
    return found


def _callbacks_stored(data: DataSet) -> tuple[int, int, dict[str, int]]:
    """Callbacks stored, the span of their arrival (ms), and their count by verdict."""
    db = Database(data.url, pool_size=1)
    try:
        with db.read() as conn:
            stored, first, last = conn.execute(
                text("SELECT count(*), min(received_at), max(received_at) FROM carrier_callbacks")
            ).one()
            rows = conn.execute(text("SELECT verdict, count(*) FROM carrier_callbacks GROUP BY verdict"))
            verdicts = {verdict_name: int(count) for verdict_name, count in rows}
        return int(stored), int(last - first) if stored else 0, verdicts
    finally:
        db.dispose()


def rows(plan: Plan, runs: list[tuple[str, Server, DataSet]], work: Path) -> list[Row]:
    """B6: one row per backend."""
    print("carrier callbacks (Twilio, signed)", file=sys.stderr, flush=True)
    found = []
    for backend, server, data in runs:
        result = callbacks(server, data, "callbacks", plan.single_seconds, work)
        run = result.run
        checks = f"{run.stored:,} applied, " + ("reconciled" if run.reconciled else "COUNTERS DISAGREE")
        if set(result.verdicts) - {"applied"}:
            checks += f", verdicts {result.verdicts}"
        if run.bad_responses:
            checks += f", {run.bad_responses} bad responses"
        found.append(
            Row(
                "B6",
                f"Twilio status callbacks, signed, one per request, 32 connections ({backend})",
                f"{run.per_second:,.0f} callbacks/s (server CPU {run.cpu_us_per_event:,.0f} us/callback;"
                f" p99 {run.p99_ms:.1f} ms; {checks})",
                f"≥ {TARGET:,} callbacks/s",
                f"{run.per_second / TARGET:.0%} of target",
                verdict(run.per_second >= TARGET and result.clean),
            )
        )
    return found


def main(argv: list[str] | None = None) -> int:
    """Run B6 on SQLite and PostgreSQL once; 0 when it completed (a missed target is reported)."""
    parser = argparse.ArgumentParser(prog="python -m bench.carrier_callbacks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the quick plan's pool and duration")
    parser.add_argument("--workdir", default="/tmp/callstats-bench", help="data sets and server logs")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rate-limit", default="100000000/second", help="CALLSTATS_STATS_RATE_LIMIT")
    args = parser.parse_args(argv)
    exit_on_signals()
    plan = QUICK if args.quick else FULL
    wrk.ensure_wrk()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sqlite_path = work / "callbacks.db"
    for stale in (sqlite_path, Path(f"{sqlite_path}-wal"), Path(f"{sqlite_path}-shm")):
        stale.unlink(missing_ok=True)
    sqlite = dataset.one_pending_campaign(dataset.sqlite_url(sqlite_path), "callbacks", plan.pool)
    fresh = dataset.fresh_postgres(args.postgres, "callstats_bench_callbacks")
    postgres = dataset.one_pending_campaign(fresh, "callbacks", plan.pool)
    before = load_average()
    with Fleet(work / "logs") as servers:
        runs = [
            ("SQLite", servers.callstats("sqlite-callbacks", sqlite.url, None, args.rate_limit), sqlite),
            (
                "PostgreSQL",
                servers.callstats("postgres-callbacks", postgres.url, None, args.rate_limit),
                postgres,
            ),
        ]
        found = rows(plan, runs, work)
    print(table(found))
    print(f"\nload average (1 min) before {before}, after {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
