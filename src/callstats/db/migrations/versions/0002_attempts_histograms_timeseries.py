"""attempt counters, histograms and per-minute time series

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

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
    from callstats.stats.histogram import talk_bucket

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
        _backfill_histograms(conn, campaign_id, account_id, calls, talk_bucket)
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
