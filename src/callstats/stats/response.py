"""The seed's stats response and the `?include=` sections, computed from counter values. Pure.

Role: the rendering of stats/ (stats/service.py turns it into the one body and ETag).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, get_args

from callstats.core.counters import Counters
from callstats.core.histogram import EDGES, ERROR_BOUND, percentile
from callstats.core.outcomes import OUTCOMES
from callstats.core.rates import percent, round_half_up
from callstats.core.status import finished_at
from callstats.stats.schemas import (
    AttemptsSection,
    CampaignStats,
    DurationBucket,
    DurationsSection,
    Section,
    StatusBreakdown,
)


def success_rate(completed: int, failed: int) -> float:
    """100 * completed / (completed + failed), half-up to 2 decimals; 0 when none is final."""
    rate = percent(completed, completed + failed)
    return 0.0 if rate is None else rate


def average_duration(talk_seconds: int, answered_calls: int) -> int:
    """Talk time per answered call, half-up to an integer; 0 when none."""
    if answered_calls == 0:
        return 0
    return int(round_half_up(Decimal(talk_seconds) / Decimal(answered_calls), 0))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=4096)
def _iso_minute(minute: int) -> str:
    """`YYYY-MM-DDTHH:MM:` of the minute `minute` minutes after 1970-01-01T00:00Z (an export's rows come
    in time order, so consecutive times mostly share their minute)."""
    t = _EPOCH + timedelta(minutes=minute)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"


# the "SS" of each second, and the ".mmmZ" of each millisecond ("Z" alone for none): two indexes instead
# of a format of four numbers
_SECONDS = tuple(f"{second:02d}" for second in range(60))
_MILLIS_Z = ("Z", *(f".{ms:03d}Z" for ms in range(1, 1000)))


def iso_utc(epoch_ms: int | None) -> str | None:
    """Epoch ms as ISO 8601 UTC, `YYYY-MM-DDTHH:MM:SS[.mmm]Z`, milliseconds only when there are some.

    The year always has four digits (strftime's %Y writes year 1 as "1" on glibc), and the
    arithmetic is exact integers (no float). Raises OverflowError outside years 1 to 9999.
    """
    if epoch_ms is None:
        return None
    minute, in_minute = divmod(epoch_ms, 60_000)
    second, millis = divmod(in_minute, 1000)
    return _iso_minute(minute) + _SECONDS[second] + _MILLIS_Z[millis]


def completed_at(counters: Counters) -> int | None:
    """When the last contact became final, once nothing is pending or in progress."""
    return finished_at(counters.total, counters.pending, counters.in_progress, counters.last_final_at)


def stats_response(counters: Counters) -> CampaignStats:
    """The `data` object of getCampaignStats, field for field as the seed shows it."""
    return {
        "campaign_id": counters.campaign_id,
        "campaign_name": counters.campaign_name,
        "total_contacts": counters.total,
        "calls_completed": counters.completed,
        "calls_failed": counters.failed,
        "calls_in_progress": counters.in_progress,
        "calls_pending": counters.pending,
        "success_rate": success_rate(counters.completed, counters.failed),
        "average_call_duration": average_duration(counters.talk_seconds, counters.completed),
        "total_call_duration": counters.talk_seconds,
        "call_status_breakdown": by_outcome(counters.breakdown),
        "started_at": iso_utc(counters.first_call_at),
        "completed_at": iso_utc(completed_at(counters)),
    }


def by_outcome(counts: Mapping[str, int]) -> StatusBreakdown:
    """A count for each outcome, 0 for those absent."""
    return {
        "answered": counts.get("answered", 0),
        "busy": counts.get("busy", 0),
        "no_answer": counts.get("no_answer", 0),
        "failed": counts.get("failed", 0),
        "voicemail": counts.get("voicemail", 0),
    }


INCLUDABLE: tuple[Section, ...] = get_args(Section)


def attempts_section(columns: Mapping[str, Any], per_contact: Mapping[int, int]) -> AttemptsSection:
    """Total attempts, attempts by outcome, and how many contacts made each number of attempts."""
    return {
        "total": int(columns["attempts"]),
        "by_outcome": by_outcome({o: int(columns["att_" + o]) for o in OUTCOMES}),
        "per_contact": [
            {"attempts": k, "contacts": per_contact[k]} for k in sorted(per_contact) if per_contact[k]
        ],
    }


def durations_section(talk: Mapping[int, int]) -> DurationsSection:
    """Talk-time percentiles of answered calls and their histogram (fixed buckets)."""
    return {
        "answered_calls": sum(talk.values()),
        "p50": percentile(talk, 50),
        "p90": percentile(talk, 90),
        "p99": percentile(talk, 99),
        "percentile_error_bound": ERROR_BOUND,
        "histogram": histogram(talk),
    }


def histogram(counts: Mapping[int, int]) -> list[DurationBucket]:
    """Non-empty buckets in order, as {"le": upper edge in seconds, "count": n}."""
    return [{"le": EDGES[b], "count": counts[b]} for b in sorted(counts) if counts[b]]
