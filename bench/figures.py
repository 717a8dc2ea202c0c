"""Each measurement of the bench, turned into rows of the table."""

from __future__ import annotations

import sys

import redis

from bench import ingest
from bench import reads as load
from bench.dataset import DataSet
from bench.plan import Plan
from bench.reads import Target
from bench.report import Row, median, spread, verdict
from bench.servers import Server
from bench.wrk import WrkResult

SEED_LATENCY = {
    "small": "seed: < 500 ms below 10,000 contacts",
    "large": "seed: 2-3 s above 50,000 contacts",
}
NAIVE_CONNECTIONS = 4
NOTES = [
    "ratios are medians of per-round ratios; the other figures are medians over rounds",
    f"naive recompute runs with -c{NAIVE_CONNECTIONS} (3x longer at 1M contacts): at -c32 a queue of"
    " 1M-contact GROUP BYs outlasts any sane timeout, and its throughput is CPU-bound either way"
    " (its threads use both cores)",
    "raw ASGI = bench/raw_app.py, a fixed body of the same size on the same uvicorn (httptools, uvloop)",
]


def _path(data: DataSet, label: str) -> str:
    return f"/getCampaignStats/{data.campaigns[label]}"


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"


def _cpu(result: list[WrkResult]) -> float:
    """Median server CPU per request over rounds, in microseconds."""
    return median([r.cpu_us_per_request for r in result])


def _load(result: list[WrkResult]) -> tuple[float, float, float]:
    """Median req/s, p50 and p99 over rounds."""
    return (
        median([r.rps for r in result]),
        median([r.p50_ms for r in result]),
        median([r.p99_ms for r in result]),
    )


def reads(
    plan: Plan, raw: Server, ours: Server, data: DataSet, naive: Server, pg_server: Server, pg: DataSet
) -> list[Row]:
    """B1 and B2 in alternating rounds, then (A) with one client."""
    headers, pg_headers = {"x-api-key": data.api_key}, {"x-api-key": pg.api_key}
    targets = [Target("raw", raw, _path(data, plan.naive_labels[0]), headers)]
    targets += [Target(f"ours:{label}", ours, _path(data, label), headers) for label in plan.read_sizes]
    targets.append(Target("postgres:read", pg_server, _path(pg, "read"), pg_headers))
    naive_targets = [
        Target(
            f"naive:{label}",
            naive,
            _path(data, label),
            headers,
            NAIVE_CONNECTIONS,
            120,
            settle=True,
            seconds_factor=3.0 if plan.read_sizes[label] >= 1_000_000 else 1.0,
        )
        for label in plan.naive_labels
    ]
    print("stats reads, warm-up", file=sys.stderr, flush=True)
    for target in targets:
        load.measure(target, 1)
    results = load.alternating_rounds(targets + naive_targets, plan.rounds, plan.seconds)
    rows = _b1_rows(plan, results, pg)
    rows += _b2_rows(plan, results)
    print("stats reads, one client", file=sys.stderr, flush=True)
    rows += _scale_rows(plan, targets, naive_targets)
    return rows


def _b1_rows(plan: Plan, results: dict[str, list[WrkResult]], pg: DataSet) -> list[Row]:
    raw_rps, _raw_p50, raw_p99 = _load(results["raw"])
    raw_cpu = _cpu(results["raw"])
    rows = [
        Row(
            "B1",
            "raw ASGI app, fixed body (reference)",
            f"{raw_rps:,.0f} req/s, p99 {_ms(raw_p99)}, server CPU {raw_cpu:,.0f} us/req",
        )
    ]
    for label, size in plan.read_sizes.items():
        key = f"ours:{label}"
        rps, p50, p99 = _load(results[key])
        ratio = median(load.round_ratios(results, key, "raw"))
        errors = sum(r.errors for r in results[key])
        rows.append(
            Row(
                "B1",
                f"getCampaignStats, SQLite, {size:,} contacts",
                f"{rps:,.0f} req/s, p50 {_ms(p50)}, p99 {_ms(p99)},"
                f" server CPU {_cpu(results[key]):,.0f} us/req" + (f", {errors} errors" if errors else ""),
                f"≥ 40 % of raw, p99 < 5 ms (raw's p99: {_ms(raw_p99)})",
                f"{ratio:.0%} of raw (by CPU: {median(load.cpu_ratios(results, key, 'raw')):.0%})",
                verdict(ratio >= 0.40 and p99 < 5 and not errors),
            )
        )
    p50s = [_load(results[f"ours:{label}"])[1] for label in plan.flat_labels]
    rows.append(
        Row(
            "B1",
            "p50 spread across " + " / ".join(plan.flat_labels) + " contacts",
            " / ".join(_ms(p) for p in p50s),
            "within 20 %",
            f"{spread(p50s):.0%}",
            verdict(spread(p50s) <= 0.20),
        )
    )
    rps, p50, p99 = _load(results["postgres:read"])
    ratio = median(load.round_ratios(results, "postgres:read", "raw"))
    rows.append(
        Row(
            "B1",
            f"getCampaignStats, PostgreSQL + Redis limiter, {pg.sizes['read']:,} contacts",
            f"{rps:,.0f} req/s, p50 {_ms(p50)}, p99 {_ms(p99)},"
            f" server CPU {_cpu(results['postgres:read']):,.0f} us/req (PostgreSQL and Redis not counted)",
            "≥ 25 % of raw",
            f"{ratio:.0%} of raw (by CPU: {median(load.cpu_ratios(results, 'postgres:read', 'raw')):.0%})",
            verdict(ratio >= 0.25),
        )
    )
    return rows


def _b2_rows(plan: Plan, results: dict[str, list[WrkResult]]) -> list[Row]:
    rows = []
    for label in plan.naive_labels:
        rps, p50, _p99 = _load(results[f"naive:{label}"])
        ours_rps = _load(results[f"ours:{label}"])[0]
        ratios = load.round_ratios(results, f"ours:{label}", f"naive:{label}")
        seconds = plan.seconds * plan.rounds * (3.0 if plan.read_sizes[label] >= 1_000_000 else 1.0)
        shown = (
            f"{rps:,.1f} req/s, p50 {_ms(p50)},"
            f" server CPU {_cpu(results[f'naive:{label}']) / 1000:,.1f} ms/req"
            if rps
            else f"< {1 / seconds:.2f} req/s (none finished)"
        )
        rows.append(
            Row(
                "B2",
                f"naive GROUP BY per request, SQLite, {plan.read_sizes[label]:,} contacts,"
                f" c{NAIVE_CONNECTIONS}",
                shown,
                f"ours: {ours_rps:,.0f} req/s",
                f"ours {median(ratios):,.0f}x faster" if ratios else "ours: naive finished none",
            )
        )
    return rows


def _scale_rows(plan: Plan, targets: list[Target], naive_targets: list[Target]) -> list[Row]:
    by_key = {t.key: t for t in targets + naive_targets}
    ours = load.alternating_rounds(
        [by_key[f"ours:{label}"] for label in plan.scale_labels], plan.rounds, plan.one_client_seconds, 1
    )
    naive = {
        key: load.measure(by_key[key], plan.naive_one_client_seconds, 1)
        for key in (f"naive:{label}" for label in plan.scale_labels)
        if key in by_key
    }
    rows, ours_p50 = [], []
    for label in plan.scale_labels:
        size = plan.read_sizes[label]
        _rps, p50, p99 = _load(ours[f"ours:{label}"])
        ours_p50.append(p50)
        reference = SEED_LATENCY["small" if size <= 10_000 else "large"]
        slow = naive.get(f"naive:{label}")
        if slow is not None and slow.requests:
            reference += f"; naive recompute here: p50 {_ms(slow.p50_ms)}"
        rows.append(
            Row(
                "A",
                f"one stats read, one client, {size:,} contacts",
                f"p50 {_ms(p50)}, p99 {_ms(p99)}",
                reference,
                f"naive / ours = {slow.p50_ms / p50:,.0f}" if slow is not None and slow.requests else "",
            )
        )
    rows.append(
        Row(
            "A",
            "one-client p50 spread across " + " / ".join(plan.scale_labels) + " contacts",
            f"{spread(ours_p50):.0%}",
            "the same cost at every size (within 20 %)",
            "",
            verdict(spread(ours_p50) <= 0.20),
        )
    )
    return rows


def memory(plan: Plan, ours: Server) -> list[Row]:
    """B5: the read server's memory after serving every campaign, the largest included."""
    largest = max(plan.read_sizes.values())
    rss, peak = ours.memory_mb(), ours.memory_mb("VmHWM")
    return [
        Row(
            "B5",
            f"server RSS after serving a {largest:,}-contact campaign",
            f"{rss:.0f} MiB (peak {peak:.0f} MiB)",
            "< 300 MB",
            "",
            verdict(peak * 1.048576 < 300),
        )
    ]


def ingestion(plan: Plan, writer: Server, writes: DataSet, pg_server: Server, pg: DataSet) -> list[Row]:
    """B3: recordCallEvents, batches of 1,000 and single events, 32 writers on one campaign."""
    print("recordCallEvents", file=sys.stderr, flush=True)
    rows = []
    runs = [
        ("SQLite", writer, writes, 1000, plan.batch_seconds, 20_000),
        ("PostgreSQL", pg_server, pg, 1000, plan.batch_seconds, 10_000),
        ("SQLite", writer, writes, 1, plan.single_seconds, 2_000),
        ("PostgreSQL", pg_server, pg, 1, plan.single_seconds, 2_000),
    ]
    for backend, server, data, per_request, seconds, target in runs:
        label = "batch" if per_request > 1 else "single"
        result = ingest.record_events(server, data, label, per_request, seconds)
        checks = f"{result.stored:,} stored, " + ("reconciled" if result.reconciled else "COUNTERS DISAGREE")
        if result.bad_responses:
            checks += f", {result.bad_responses} bad responses"
        shape = "1,000 per request" if per_request > 1 else "one per request"
        rows.append(
            Row(
                "B3",
                f"recordCallEvents, {backend}, {shape}, 32 writers, one campaign",
                f"{result.per_second:,.0f} events/s (server CPU {result.cpu_us_per_event:,.0f} us/event;"
                f" p99 {_ms(result.p99_ms)} per request; {checks})",
                f"≥ {target:,} events/s",
                f"{result.per_second / target:.0%} of target",
                verdict(result.per_second >= target and result.reconciled and not result.bad_responses),
            )
        )
    return rows


def ingestion_by_phone(plan: Plan, writer: Server, writes: DataSet) -> list[Row]:
    """B3: recordCallEvents naming contacts by phone, batches of 1,000, one client, SQLite."""
    print("recordCallEvents by phone", file=sys.stderr, flush=True)
    target = 20_000
    result = ingest.record_events(writer, writes, "phone", 1000, plan.batch_seconds, 1, by_phone=True)
    checks = f"{result.stored:,} stored, " + ("reconciled" if result.reconciled else "COUNTERS DISAGREE")
    if result.bad_responses:
        checks += f", {result.bad_responses} bad responses"
    return [
        Row(
            "B3",
            "recordCallEvents by phone, 1,000 per request, 1 client (SQLite)",
            f"{result.per_second:,.0f} events/s (server CPU {result.cpu_us_per_event:,.0f} us/event;"
            f" p99 {_ms(result.p99_ms)} per request; {checks})",
            f"≥ {target:,} events/s",
            f"{result.per_second / target:.0%} of target",
            verdict(result.per_second >= target and result.reconciled and not result.bad_responses),
        )
    ]


def imports(plan: Plan, writer: Server, writes: DataSet) -> list[Row]:
    """B4: contacts through addContacts as CSV, 10,000 per request."""
    print("addContacts", file=sys.stderr, flush=True)
    result = ingest.import_contacts(writer, writes, "import", plan.imports)
    complete = result.accepted == plan.imports == result.total_contacts
    return [
        Row(
            "B4",
            f"addContacts CSV, SQLite, {plan.imports:,} contacts, 10,000 per request, 2 in flight",
            f"{result.per_second:,.0f} contacts/s ({result.seconds:.1f} s"
            + ("" if complete else f"; only {result.accepted:,} accepted")
            + ")",
            "≥ 25,000 contacts/s",
            f"{result.per_second / 25_000:.0%} of target",
            verdict(result.per_second >= 25_000 and complete),
        )
    ]


def forget_rate_limits(redis_url: str, pg: DataSet) -> None:
    """Drop the Redis rate-limit keys the bench's campaigns left behind."""
    client = redis.Redis.from_url(redis_url)
    try:
        for campaign_id in pg.campaigns.values():
            keys = list(client.scan_iter(match=f"*{campaign_id}*", count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()
