"""The time-series use case: validate the window, read the minutes, bucket them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select

from callstats.db.engine import Database
from callstats.db.schema import SERIES_COLUMNS, campaign_counters, campaign_timeseries, campaigns
from callstats.errors import CampaignNotFound, ValidationFailed
from callstats.timeseries.buckets import aggregate, boundaries, bucket_count, shown

MAX_BUCKETS = 10_000


def zone(name: str) -> ZoneInfo:
    """The IANA time zone, or a 400."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"tz: unknown IANA time zone {name[:64]!r}") from None


def moment(raw: str | None, field: str, tz: ZoneInfo) -> datetime | None:
    """An ISO 8601 time (without offset: local to `tz`), or a 400."""
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"{field}: not an ISO 8601 time: {raw[:64]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _window(db: Database, account_id: str, campaign_id: str) -> tuple[int, int | None]:
    """The campaign's creation time and first call start (epoch ms), or 404."""
    with db.read() as conn:
        created = conn.execute(
            select(campaigns.c.created_at).where(
                campaigns.c.id == campaign_id, campaigns.c.account_id == account_id
            )
        ).scalar()
        if created is None:
            raise CampaignNotFound()
        first = conn.execute(
            select(func.min(campaign_counters.c.first_call_at)).where(
                campaign_counters.c.campaign_id == campaign_id
            )
        ).scalar()
    return int(created), first


def _minutes(
    db: Database, campaign_id: str, start: datetime, end: datetime
) -> list[tuple[int, dict[str, int]]]:
    ts = campaign_timeseries.c
    query = (
        select(ts.minute, *(func.sum(ts[name]).label(name) for name in SERIES_COLUMNS))
        .where(
            ts.campaign_id == campaign_id,
            ts.minute >= int(start.timestamp()) // 60,
            ts.minute < -(-int(end.timestamp()) // 60),
        )
        .group_by(ts.minute)
    )
    with db.read() as conn:
        return [
            (int(row[0]), {n: int(v or 0) for n, v in zip(SERIES_COLUMNS, row[1:], strict=True)})
            for row in conn.execute(query)
        ]


def timeseries(
    db: Database,
    account_id: str,
    campaign_id: str,
    interval: str,
    start_raw: str | None,
    end_raw: str | None,
    tz_name: str,
) -> dict[str, Any]:
    """Per-bucket counts of a campaign between `from` and `to` (default: its first call until now)."""
    tz = zone(tz_name)
    created, first_call = _window(db, account_id, campaign_id)
    start = moment(start_raw, "from", tz) or datetime.fromtimestamp((first_call or created) / 1000, tz=UTC)
    end = moment(end_raw, "to", tz) or datetime.now(tz=UTC)
    if end <= start:
        raise ValidationFailed("to: must be after from")
    if bucket_count(start, end, interval) > MAX_BUCKETS + 2:
        raise ValidationFailed(f"from/to: more than {MAX_BUCKETS} {interval} buckets; narrow the window")
    edges = boundaries(start, end, interval, tz)
    buckets = aggregate(edges, _minutes(db, campaign_id, edges[0], edges[-1]), tz)
    totals: dict[str, int] = {}
    for bucket in buckets:
        for name, amount in bucket.counts.items():
            totals[name] = totals.get(name, 0) + amount
    return {
        "campaign_id": campaign_id,
        "interval": interval,
        "tz": tz_name,
        "from": edges[0].astimezone(tz).isoformat(),
        "to": edges[-1].astimezone(tz).isoformat(),
        "buckets": [
            {"start": b.start.isoformat(), "end": b.end.isoformat(), **shown(b.counts)} for b in buckets
        ],
        "totals": shown(totals),
    }
