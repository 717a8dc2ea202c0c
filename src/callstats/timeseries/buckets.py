"""Local-time buckets (minute, hour, day) over UTC minutes, DST included. Pure."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from callstats.stats.response import success_rate
from callstats.timeseries.schemas import Figures

INTERVALS = ("minute", "hour", "day")
# A step past the next boundary but short of the one after, whatever DST does to hours and days.
_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(minutes=90), "day": timedelta(hours=36)}


def floor_local(moment: datetime, interval: str, tz: ZoneInfo) -> datetime:
    """The start (in UTC) of the local minute, hour or day holding `moment`."""
    local = moment.astimezone(tz).replace(second=0, microsecond=0)
    if interval in ("hour", "day"):
        local = local.replace(minute=0)
    if interval == "day":
        local = local.replace(hour=0)
    return local.astimezone(UTC)


def boundaries(start: datetime, end: datetime, interval: str, tz: ZoneInfo) -> list[datetime]:
    """Bucket starts covering [start, end), followed by the end of the last bucket."""
    edges = [floor_local(start, interval, tz)]
    while edges[-1] < end:
        edges.append(floor_local(edges[-1] + _STEP[interval], interval, tz))
    if len(edges) == 1:
        edges.append(floor_local(edges[0] + _STEP[interval], interval, tz))
    return edges


def bucket_length(interval: str) -> timedelta:
    """The nominal length of a bucket (local days may be 23 or 25 hours)."""
    return {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[interval]


def bucket_count(start: datetime, end: datetime, interval: str) -> int:
    """About how many buckets [start, end) spans, to refuse huge requests before building their edges."""
    return int((end - start) / bucket_length(interval)) + 2


@dataclass
class Bucket:
    """Counts of one local bucket."""

    start: datetime
    end: datetime
    counts: dict[str, int] = field(default_factory=dict)


def aggregate(
    edges: list[datetime], minutes: Iterable[tuple[int, Mapping[str, int]]], tz: ZoneInfo
) -> list[Bucket]:
    """Sum per-minute counts (UTC epoch minute -> counts) into the buckets the edges delimit."""
    buckets = [Bucket(edges[i].astimezone(tz), edges[i + 1].astimezone(tz)) for i in range(len(edges) - 1)]
    edge_minutes = [int(edge.timestamp()) // 60 for edge in edges]
    for minute, counts in minutes:
        index = bisect.bisect_right(edge_minutes, minute) - 1
        if 0 <= index < len(buckets):
            target = buckets[index].counts
            for name, amount in counts.items():
                target[name] = target.get(name, 0) + int(amount)
    return buckets


def shown(bucket_counts: Mapping[str, int]) -> Figures:
    """The figures of one bucket (or of the totals) as the API shows them."""
    answered = bucket_counts.get("answered", 0)
    failed_final = bucket_counts.get("finals_failed", 0)
    return {
        "calls_started": bucket_counts.get("starts", 0),
        "answered": answered,
        "busy": bucket_counts.get("busy", 0),
        "no_answer": bucket_counts.get("no_answer", 0),
        "failed": bucket_counts.get("failed", 0),
        "voicemail": bucket_counts.get("voicemail", 0),
        "answered_talk_seconds": bucket_counts.get("talk_seconds", 0),
        "contacts_completed": answered,
        "contacts_failed": failed_final,
        "success_rate": success_rate(answered, failed_final),
    }
