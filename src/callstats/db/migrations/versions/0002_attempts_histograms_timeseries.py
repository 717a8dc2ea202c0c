"""attempt counters, histograms and per-minute time series

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OUTCOMES = ("answered", "busy", "no_answer", "failed", "voicemail")
SERIES = ("starts", *OUTCOMES, "talk_seconds", "finals_failed")

# The talk-time buckets as stats/histogram.py defined them at this revision, frozen here: a migration
# must not change when the live code does. Bucket i holds durations d with EDGES[i-1] < d <= EDGES[i],
# durations clamped to [0, TALK_MAX_SECONDS].
TALK_MAX_SECONDS = 604_800
# fmt: off
TALK_EDGES = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 23, 25, 27, 29, 31, 33,
    35, 37, 39, 42, 45, 48, 51, 54, 57, 60, 64, 68, 72, 76, 80, 85, 90, 95, 100, 106, 112, 118, 124,
    131, 138, 145, 153, 161, 170, 179, 189, 199, 210, 221, 233, 245, 258, 271, 285, 300, 316, 332, 349,
    367, 386, 406, 427, 449, 472, 496, 521, 548, 576, 605, 636, 668, 702, 738, 775, 814, 855, 898, 943,
    991, 1041, 1094, 1149, 1207, 1268, 1332, 1399, 1470, 1544, 1622, 1704, 1790, 1880, 1975, 2074, 2178,
    2287, 2402, 2523, 2650, 2783, 2923, 3070, 3224, 3386, 3556, 3734, 3921, 4118, 4324, 4541, 4769,
    5008, 5259, 5523, 5800, 6091, 6396, 6716, 7052, 7405, 7776, 8165, 8574, 9003, 9454, 9927, 10424,
    10946, 11494, 12069, 12673, 13307, 13973, 14672, 15406, 16177, 16986, 17836, 18728, 19665, 20649,
    21682, 22767, 23906, 25102, 26358, 27676, 29060, 30514, 32040, 33643, 35326, 37093, 38948, 40896,
    42941, 45089, 47344, 49712, 52198, 54808, 57549, 60427, 63449, 66622, 69954, 73452, 77125, 80982,
    85032, 89284, 93749, 98437, 103359, 108528, 113955, 119653, 125636, 131918, 138514, 145440, 152713,
    160349, 168367, 176786, 185626, 194908, 204654, 214887, 225632, 236914, 248760, 261199, 274260,
    287974, 302373, 317492, 333367, 350036, 367538, 385915, 405211, 425472, 446746, 469084, 492539,
    517167, 543026, 570178, 598687, 628622,
)
# fmt: on


def _talk_bucket(seconds: int) -> int:
    """The index of the bucket holding a talk time (stats/histogram.talk_bucket at this revision)."""
    return bisect.bisect_left(TALK_EDGES, min(max(seconds, 0), TALK_MAX_SECONDS))


def upgrade() -> None:
    with op.batch_alter_table("campaign_counters") as batch:
        for name in ("attempts", *(f"att_{o}" for o in OUTCOMES)):
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "campaign_histograms",
        sa.Column("campaign_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "kind", "bucket", "slot", name=op.f("pk_campaign_histograms")),
    )
    op.create_table(
        "campaign_timeseries",
        sa.Column("campaign_id", sa.String(36), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in SERIES),
        sa.PrimaryKeyConstraint("campaign_id", "minute", "slot", name=op.f("pk_campaign_timeseries")),
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """Derive the new figures of existing campaigns from their raw rows, into slot 0."""
    campaigns = conn.execute(sa.text("SELECT id, account_id FROM campaigns")).all()
    for campaign_id, account_id in campaigns:
        calls = conn.execute(
            sa.text(
                "SELECT started_at, ended_at, status, outcome, duration_seconds "
                "FROM calls WHERE campaign_id = :c"
            ),
            {"c": campaign_id},
        ).all()
        outcomes = Counter(row.outcome for row in calls if row.status == "ended")
        conn.execute(
            sa.text(
                "UPDATE campaign_counters SET attempts = :n, att_answered = :a, att_busy = :b, "
                "att_no_answer = :na, att_failed = :f, att_voicemail = :v WHERE campaign_id = :c AND slot = 0"
            ),
            {
                "n": len(calls),
                "a": outcomes["answered"],
                "b": outcomes["busy"],
                "na": outcomes["no_answer"],
                "f": outcomes["failed"],
                "v": outcomes["voicemail"],
                "c": campaign_id,
            },
        )
        _backfill_histograms(conn, campaign_id, account_id, calls, _talk_bucket)
        _backfill_series(conn, campaign_id, account_id, calls)


def _backfill_histograms(
    conn: sa.Connection,
    campaign_id: str,
    account_id: str,
    calls: Sequence[Any],
    bucket_of: Callable[[int], int],
) -> None:
    attempts = Counter(
        row.attempts
        for row in conn.execute(
            sa.text("SELECT attempts FROM contacts WHERE campaign_id = :c"), {"c": campaign_id}
        )
    )
    talk = Counter(bucket_of(row.duration_seconds or 0) for row in calls if row.outcome == "answered")
    rows = [("a", k, n) for k, n in attempts.items()] + [("t", k, n) for k, n in talk.items()]
    for kind, bucket, count in rows:
        conn.execute(
            sa.text(
                "INSERT INTO campaign_histograms (campaign_id, kind, bucket, slot, account_id, count) "
                "VALUES (:c, :k, :b, 0, :acc, :n)"
            ),
            {"c": campaign_id, "k": kind, "b": bucket, "acc": account_id, "n": count},
        )


def _backfill_series(conn: sa.Connection, campaign_id: str, account_id: str, calls: Sequence[Any]) -> None:
    minutes: dict[int, Counter[str]] = {}
    for row in calls:
        minutes.setdefault(row.started_at // 60_000, Counter())["starts"] += 1
        if row.status == "ended" and row.outcome:
            bucket = minutes.setdefault(row.ended_at // 60_000, Counter())
            bucket[row.outcome] += 1
            if row.outcome == "answered":
                bucket["talk_seconds"] += row.duration_seconds or 0
    finals = conn.execute(
        sa.text("SELECT finalized_at FROM contacts WHERE campaign_id = :c AND state = 'failed'"),
        {"c": campaign_id},
    ).all()
    for (finalized_at,) in finals:
        if finalized_at is not None:
            minutes.setdefault(finalized_at // 60_000, Counter())["finals_failed"] += 1
    columns = ", ".join(SERIES)
    values = ", ".join(f":{name}" for name in SERIES)
    for minute, counts in minutes.items():
        conn.execute(
            sa.text(
                f"INSERT INTO campaign_timeseries (campaign_id, minute, slot, account_id, {columns}) "
                f"VALUES (:c, :m, 0, :acc, {values})"
            ),
            {"c": campaign_id, "m": minute, "acc": account_id, **{name: counts[name] for name in SERIES}},
        )


def downgrade() -> None:
    op.drop_table("campaign_timeseries")
    op.drop_table("campaign_histograms")
    with op.batch_alter_table("campaign_counters") as batch:
        for name in ("attempts", *(f"att_{o}" for o in OUTCOMES)):
            batch.drop_column(name)
