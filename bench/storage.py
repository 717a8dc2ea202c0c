"""`python -m bench.storage`: bytes per contact, call and event row on PostgreSQL, indexes and TOAST included.

Builds one campaign in its own database (`callstats_storage`, dropped and recreated next to
`--postgres`) with set-based SQL: `--contacts` contacts with a name and a one-key metadata
object; 1.15 calls per contact (the bench's mix: 19 in 20 called, 4 in 20 twice) with
carrier-style ids; `--events-per-call` stored events per call with 36-character ids and SHA-256
body hashes, the widths the API stores; 30 days of per-minute series rows in `--slots` slots.
Then VACUUM ANALYZE and, per table, rows and pg_total_relation_size (heap, indexes, TOAST): the
figures docs/scaling.md plans storage with. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import sys
import time

from sqlalchemy import create_engine, text

from bench import dataset
from callstats.config import sqlalchemy_url

T0 = dataset.T0_MS
SEQ = "generate_series(0, CAST(:n AS BIGINT) - 1) AS i"
CONTACTS = f"""
INSERT INTO contacts (id, campaign_id, account_id, phone, name, metadata, state, attempts,
  live_call_id, last_outcome, finalized_at, created_at, last_call_at)
SELECT i + 1, :cid, :aid, '+1' || CAST(2122000000 + i AS TEXT), 'Contact ' || i,
  '{{"crm_id": "C-' || i || '"}}', 'completed', 1, NULL, 'answered', {T0} + i * 1000, {T0}, {T0} + i * 1000
FROM {SEQ}"""
CALLS = f"""
INSERT INTO calls (account_id, call_id, campaign_id, contact_id, attempt, status, outcome,
  duration_seconds, started_at, answered_at, ended_at, start_reported)
SELECT :aid, 'CA' || md5(i || '-' || a), :cid, i + 1, a, 'ended', 'answered', 20 + i % 241,
  {T0} + i * 1000, {T0} + i * 1000 + 5000, {T0} + i * 1000 + 60000, true
FROM {SEQ}, generate_series(1, 2) AS a
WHERE (a = 1 AND i % 20 <> 19) OR (a = 2 AND i % 20 BETWEEN 13 AND 16)"""
EVENTS = """
INSERT INTO call_events (account_id, event_id, body_hash, campaign_id, call_id, type, occurred_at,
  received_at, effect)
SELECT c.account_id, 'evt-' || md5(c.call_id || e), encode(sha256(CAST(c.call_id || e AS bytea)), 'hex'),
  c.campaign_id, c.call_id, (ARRAY['call.started', 'call.answered', 'call.ended'])[1 + (e - 1) % 3],
  c.started_at + e * 1000, c.started_at + e * 1000 + 40, 'applied'
FROM calls AS c, generate_series(1, :per_call) AS e WHERE c.campaign_id = :cid"""
SERIES = f"""
INSERT INTO campaign_timeseries (campaign_id, minute, slot, account_id, starts, answered, busy, no_answer,
  failed, voicemail, talk_seconds, finals_failed)
SELECT :cid, {T0 // 60000} + m, s, :aid, 9, 6, 1, 1, 0, 1, 700, 0
FROM generate_series(0, 43199) AS m, generate_series(0, :slots - 1) AS s"""
SIZES = """
SELECT relname, pg_relation_size(oid), pg_indexes_size(oid), pg_total_relation_size(oid)
FROM pg_class WHERE relname IN ('contacts', 'calls', 'call_events', 'campaign_timeseries')
ORDER BY relname"""


def main(argv: list[str] | None = None) -> int:
    """Build the campaign, print one line per table: rows, heap, indexes, total and bytes per row."""
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events-per-call", type=int, default=4)
    parser.add_argument(
        "--slots", type=int, default=4, help="counter slots per minute row (30 days of minutes)"
    )
    args = parser.parse_args(argv)
    engine, data = dataset.open_dataset(dataset.fresh_postgres(args.postgres, "callstats_storage"))
    started = time.monotonic()
    with engine.begin() as conn:
        campaign = dataset._new_campaign(conn, data, "storage", args.contacts, max_attempts=2)
        params = {**campaign, "n": args.contacts, "per_call": args.events_per_call, "slots": args.slots}
        for statement in (CONTACTS, CALLS, EVENTS, SERIES):
            conn.execute(text(statement), params)
    engine.dispose()
    vacuum = create_engine(sqlalchemy_url(data.url), isolation_level="AUTOCOMMIT")
    with vacuum.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
        rows = {
            name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
            for name in ("contacts", "calls", "call_events", "campaign_timeseries")
        }
        sizes = conn.execute(text(SIZES)).all()
    vacuum.dispose()
    admin = create_engine(sqlalchemy_url(args.postgres), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "callstats_storage" WITH (FORCE)'))  # gigabytes
    admin.dispose()
    print(f"built in {time.monotonic() - started:.0f} s; {args.contacts:,} contacts", file=sys.stderr)
    print("| table | rows | heap MiB | indexes MiB | total MiB | bytes per row |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, heap, indexes, total in sizes:
        mib = 1024 * 1024
        print(
            f"| {name} | {rows[name]:,} | {heap / mib:,.1f} | {indexes / mib:,.1f} | {total / mib:,.1f}"
            f" | {total / rows[name]:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
