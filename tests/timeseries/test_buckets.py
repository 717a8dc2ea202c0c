"""Local-time bucketing (pure): DST days of 23 and 25 hours, half-hour zones, day boundaries, zero-filling."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstats.timeseries.buckets import aggregate, boundaries, bucket_count, floor_local, shown

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
ZONES = [NEW_YORK, BERLIN, KOLKATA, KATHMANDU, ZoneInfo("UTC"), ZoneInfo("Australia/Sydney")]

# (zone, local date of a DST change, hours in that local day)
DST_DAYS = [
    (NEW_YORK, date(2024, 3, 10), 23),
    (NEW_YORK, date(2024, 11, 3), 25),
    (BERLIN, date(2024, 3, 31), 23),
    (BERLIN, date(2024, 10, 27), 25),
]


def utc(text: str) -> datetime:
    """An aware UTC datetime from 'YYYY-MM-DDTHH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which `day` starts in `tz`."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def hours(delta: timedelta) -> float:
    """A duration in hours."""
    return delta.total_seconds() / 3600


@pytest.mark.parametrize(("tz", "day", "length"), DST_DAYS)
def test_dst_day_is_one_bucket_of_23_or_25_hours(tz: ZoneInfo, day: date, length: int) -> None:
    """A day bucket spans the whole local day, whatever its length in hours."""
    start = local_midnight(day, tz)
    edges = boundaries(start, start + timedelta(hours=1), "day", tz)
    assert len(edges) == 2
    assert edges[0] == start
    assert hours(edges[1] - edges[0]) == length
    assert edges[1].astimezone(tz).date() == day + timedelta(days=1)
    assert edges[1].astimezone(tz).hour == 0


@pytest.mark.parametrize(("tz", "day", "length"), DST_DAYS)
def test_dst_day_has_23_or_25_hour_buckets(tz: ZoneInfo, day: date, length: int) -> None:
    """Hour buckets over a DST day: one per real hour, each 60 minutes, starting on a local hour."""
    start, end = local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
    edges = boundaries(start, end, "hour", tz)
    assert edges[0] == start
    assert edges[-1] == end
    assert len(edges) - 1 == length
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(edges))
    assert all(e.astimezone(tz).minute == 0 for e in edges)


@pytest.mark.parametrize(("tz", "day"), [(NEW_YORK, date(2024, 11, 3)), (BERLIN, date(2024, 10, 27))])
def test_fall_back_gives_two_distinct_local_hours(tz: ZoneInfo, day: date) -> None:
    """The repeated local hour is two buckets, told apart by their UTC offsets."""
    start = local_midnight(day, tz)
    edges = boundaries(start, start + timedelta(hours=25), "hour", tz)
    local = [e.astimezone(tz) for e in edges[:-1]]
    repeated = 1 if tz is NEW_YORK else 2
    twins = [t for t in local if t.hour == repeated]
    assert len(twins) == 2
    assert twins[0].isoformat() != twins[1].isoformat()
    assert twins[0].utcoffset() == twins[1].utcoffset() + timedelta(hours=1)  # type: ignore[operator]
    assert len({t.isoformat() for t in local}) == 25
    # an instant in each twin falls in its own bucket
    first, second = (t.astimezone(UTC) + timedelta(minutes=30) for t in twins)
    assert floor_local(first, "hour", tz) == twins[0].astimezone(UTC)
    assert floor_local(second, "hour", tz) == twins[1].astimezone(UTC)


@pytest.mark.parametrize(
    ("tz", "day", "skipped"), [(NEW_YORK, date(2024, 3, 10), 2), (BERLIN, date(2024, 3, 31), 2)]
)
def test_spring_forward_has_no_skipped_hour(tz: ZoneInfo, day: date, skipped: int) -> None:
    """The local hour that does not exist gets no bucket."""
    start = local_midnight(day, tz)
    local_hours = [
        e.astimezone(tz).hour for e in boundaries(start, start + timedelta(hours=23), "hour", tz)[:-1]
    ]
    assert skipped not in local_hours
    assert local_hours == [h for h in range(24) if h != skipped]


@pytest.mark.parametrize(("tz", "utc_minute"), [(KOLKATA, 30), (KATHMANDU, 15)])
def test_fractional_offset_zones_align_on_local_hours(tz: ZoneInfo, utc_minute: int) -> None:
    """+05:30 and +05:45: hour buckets start on local hours, i.e. at :30 and :15 past the UTC hour."""
    start = utc("2024-06-01T00:00")
    edges = boundaries(start, start + timedelta(hours=6), "hour", tz)
    assert all(e.astimezone(tz).minute == 0 for e in edges)
    assert all(e.minute == utc_minute for e in edges)
    assert edges[0] < start < edges[1]
    assert len(edges) - 1 == 7  # the partial first local hour, then the six that follow it


@pytest.mark.parametrize(
    ("tz", "last_instant_of_day"),
    [
        (KOLKATA, "2024-06-01T18:29:59"),  # 23:59:59 IST
        (KATHMANDU, "2024-06-01T18:14:59"),  # 23:59:59 NPT
        (NEW_YORK, "2024-06-02T03:59:59"),  # 23:59:59 EDT
        (BERLIN, "2024-06-01T21:59:59"),  # 23:59:59 CEST
    ],
)
def test_day_boundary_is_local_midnight(tz: ZoneInfo, last_instant_of_day: str) -> None:
    """23:59:59 local is still June 1; one second later is June 2."""
    last = utc(last_instant_of_day)
    assert floor_local(last, "day", tz) == local_midnight(date(2024, 6, 1), tz)
    assert floor_local(last + timedelta(seconds=1), "day", tz) == local_midnight(date(2024, 6, 2), tz)
    edges = boundaries(last - timedelta(hours=1), last + timedelta(hours=1), "day", tz)
    assert [e.astimezone(tz).date() for e in edges] == [date(2024, 6, d) for d in (1, 2, 3)]


def test_window_inside_one_bucket_still_gives_that_bucket() -> None:
    """A window shorter than one interval yields exactly the bucket holding it."""
    start = utc("2024-06-01T10:15:30")
    edges = boundaries(start, start + timedelta(seconds=10), "minute", ZoneInfo("UTC"))
    assert edges == [utc("2024-06-01T10:15"), utc("2024-06-01T10:16")]


def test_aggregate_zero_fills_and_drops_minutes_outside() -> None:
    """Every bucket is present (empty ones with no counts); minutes outside the edges are ignored."""
    tz = KOLKATA
    start = local_midnight(date(2024, 6, 1), tz)
    edges = boundaries(start, start + timedelta(hours=5), "hour", tz)
    minute = int(start.timestamp()) // 60
    series = [
        (minute - 1, {"starts": 100}),  # before the window
        (minute, {"starts": 1, "answered": 1, "talk_seconds": 30}),
        (minute + 59, {"starts": 2}),  # last minute of the first hour
        (minute + 60 * 3 + 5, {"busy": 4, "finals_failed": 1}),
        (minute + 60 * 5, {"starts": 100}),  # the end edge belongs to the next bucket
    ]
    buckets = aggregate(edges, series, tz)
    assert len(buckets) == 5
    assert [b.counts for b in buckets] == [
        {"starts": 3, "answered": 1, "talk_seconds": 30},
        {},
        {},
        {"busy": 4, "finals_failed": 1},
        {},
    ]
    assert [b.start.astimezone(tz).hour for b in buckets] == [0, 1, 2, 3, 4]
    assert all(a.end == b.start for a, b in itertools.pairwise(buckets))
    empty = shown(buckets[1].counts)
    assert set(empty) == {
        "calls_started",
        "answered",
        "busy",
        "no_answer",
        "failed",
        "voicemail",
        "answered_talk_seconds",
        "contacts_completed",
        "contacts_failed",
        "success_rate",
    }
    assert all(v == 0 for v in empty.values())


def test_shown_success_rate_is_completed_over_final() -> None:
    """success_rate of a bucket: contacts completed / (completed + became failed), half-up."""
    figures = shown({"starts": 9, "answered": 2, "busy": 5, "finals_failed": 1, "talk_seconds": 61})
    assert figures["calls_started"] == 9
    assert figures["contacts_completed"] == 2
    assert figures["contacts_failed"] == 1
    assert figures["success_rate"] == 66.67
    assert figures["answered_talk_seconds"] == 61
    assert figures["busy"] == 5  # busy calls that are retried do not count as failed contacts


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    span=st.integers(1, 40 * 86_400),
    interval=st.sampled_from(["minute", "hour", "day"]),
    tz=st.sampled_from(ZONES),
)
def test_edges_chain_on_local_boundaries(start: datetime, span: int, interval: str, tz: ZoneInfo) -> None:
    """Edges increase, cover [start, end), start on local boundaries, and bucket_count bounds them."""
    if interval == "minute":
        span = span % 86_400 + 1
    end = start + timedelta(seconds=span)
    edges = boundaries(start, end, interval, tz)
    assert edges[0] <= start < edges[1]
    assert edges[-2] < end <= edges[-1]
    assert all(a < b for a, b in itertools.pairwise(edges))
    for edge in edges:
        local = edge.astimezone(tz)
        assert local.second == 0
        if interval != "minute":
            assert local.minute == 0
        if interval == "day":
            assert local.hour == 0  # none of ZONES changes its clocks at midnight
        assert floor_local(edge, interval, tz) == edge
    assert len(edges) - 1 <= bucket_count(start, end, interval)
    nominal = {"minute": 60, "hour": 3600, "day": 86_400}[interval]
    assert all(abs((b - a).total_seconds() - nominal) <= 3600 for a, b in itertools.pairwise(edges))
