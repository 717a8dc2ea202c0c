"""The time-series use case: validate the window, read the minutes (db/counters.py), bucket them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callstats.clock import now_ms
from callstats.core.counters import MINUTE_MS
from callstats.db import counters
from callstats.db.engine import Database
from callstats.errors import CampaignNotFound, ValidationFailed
from callstats.timeseries import queries
from callstats.timeseries.buckets import aggregate, boundaries, bucket_count, bucket_length, shown
from callstats.timeseries.schemas import Interval, Timeseries, TimeseriesBucket

MAX_BUCKETS = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _recorded_span(db: Database, account_id: str, campaign_id: str) -> tuple[int, int | None, int | None]:
    """The campaign's creation time and its first and last recorded minute, or 404."""
    with db.read() as conn:
        created = queries.created_at(conn, account_id, campaign_id)
        if created is None:
            raise CampaignNotFound()
        first, last = counters.minute_span(conn, campaign_id)
    return created, first, last


_FIRST_MS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_LAST_MS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


def _default_window(created: int, first: int | None, last: int | None) -> tuple[datetime, datetime]:
    """From the first recorded minute (or the campaign's creation) to now or the last recorded minute.

    Clamped to the times datetime can hold (years 1 to 9999): data stored before event times were
    checked may lie at the very ends of the calendar, and must give a 400 at worst, never a 500.
    """
    start_ms = first * MINUTE_MS if first is not None else created
    end_ms = max(now_ms(), (last + 1) * MINUTE_MS if last is not None else 0)
    return _utc(start_ms), _utc(end_ms)


def _utc(epoch_ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime, clamped to years 1 to 9999 (exact, no float)."""
    return _EPOCH + timedelta(milliseconds=min(max(epoch_ms, _FIRST_MS), _LAST_MS))


def _minutes(
    db: Database, campaign_id: str, start: datetime, end: datetime
) -> list[tuple[int, dict[str, int]]]:
    """The recorded minutes between `start` and `end` (the partial minute at each end included)."""
    with db.read() as conn:
        return counters.minutes(
            conn, campaign_id, int(start.timestamp()) // 60, -(-int(end.timestamp()) // 60)
        )


def _edges(start: datetime, end: datetime, interval: str, tz: ZoneInfo) -> list[datetime]:
    """The window's bucket edges, or a 400 when it is out of range or holds too many buckets."""
    if bucket_count(start, end, interval) > MAX_BUCKETS * 1.1 + 2:
        raise ValidationFailed(f"from/to: more than {MAX_BUCKETS} {interval} buckets; narrow the window")
    try:
        edges = boundaries(start, end, interval, tz)
    except (OverflowError, ValueError):
        raise ValidationFailed("from/to: outside the range of representable times") from None
    if len(edges) - 1 > MAX_BUCKETS:
        raise ValidationFailed(f"from/to: more than {MAX_BUCKETS} {interval} buckets; narrow the window")
    return edges


def timeseries(
    db: Database,
    account_id: str,
    campaign_id: str,
    interval: Interval,
    start_raw: str | None,
    end_raw: str | None,
    tz_name: str,
) -> Timeseries:
    """Per-bucket counts of a campaign between `from` and `to` (default: its first call until now)."""
    tz = zone(tz_name)
    default_start, default_end = _default_window(*_recorded_span(db, account_id, campaign_id))
    end = moment(end_raw, "to", tz) or default_end
    start = moment(start_raw, "from", tz)
    if start is None:  # the default window shows at most the latest MAX_BUCKETS buckets
        try:  # less 2: widening to whole buckets (and a 23-hour day) may add one at each end
            start = max(default_start, end - (MAX_BUCKETS - 2) * bucket_length(interval))
        except OverflowError:
            start = default_start
    if end <= start:
        raise ValidationFailed("to: must be after from")
    edges = _edges(start, end, interval, tz)
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
            TimeseriesBucket(start=b.start.isoformat(), end=b.end.isoformat(), **shown(b.counts))
            for b in buckets
        ],
        "totals": shown(totals),
    }
