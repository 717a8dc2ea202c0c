"""Response shapes of getCampaignTimeseries: declared once, typed and documented.

`service.timeseries` builds its answer as these TypedDicts (mypy checks every key and type it
writes), the route returns them as its declared model (FastAPI checks every answer against it), and
`/openapi.json` describes the route from the same declarations, so the document cannot drift from
what the route sends.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict

from callstats.stats.schemas import StatusBreakdown

Interval = Literal["minute", "hour", "day"]
"""A bucket's length: a local minute, hour or day (a day may be 23 or 25 hours across DST)."""

LocalTime = Annotated[
    str,
    Field(description="ISO 8601 with the offset of `tz` at that moment, e.g. 2024-03-10T03:00:00-04:00"),
]


class Figures(TypedDict):
    """The counts of one bucket, or of the whole window (`totals`); docs/history.md defines each.

    `calls_started`: calls that started in the bucket; `answered` ... `voicemail`: calls that ended
    so; `answered_talk_seconds`: the talk time, seconds, of the answered calls that ended in it;
    `contacts_completed`, `contacts_failed`: contacts that became completed or (finally) failed;
    `success_rate`: 100 * completed / (completed + failed), 0-100, half-up to 2 decimals, 0 when
    none is final.
    """

    calls_started: int
    answered: int
    busy: int
    no_answer: int
    failed: int
    voicemail: int
    answered_talk_seconds: int
    contacts_completed: int
    contacts_failed: int
    success_rate: float


assert tuple(StatusBreakdown.__annotations__) == tuple(Figures.__annotations__)[1:6]


class BucketSpan(TypedDict):
    """A local bucket's bounds: from `start` (included) to `end` (excluded)."""

    start: LocalTime
    end: LocalTime


class TimeseriesBucket(BucketSpan, Figures):
    """One local bucket: its bounds (first in the answer), then its counts."""


# `from` is a Python keyword: the functional form names the fields as the answer does.
Timeseries = TypedDict(
    "Timeseries",
    {
        "campaign_id": str,
        "interval": Interval,
        "tz": str,
        "from": LocalTime,
        "to": LocalTime,
        "buckets": list[TimeseriesBucket],
        "totals": Figures,
    },
)
Timeseries.__doc__ = """getCampaignTimeseries' `data`: the window [`from`, `to`) in whole buckets of
`interval`, local to the IANA zone `tz`, every bucket listed (zero-filled), and their sum."""


class TimeseriesEnvelope(TypedDict):
    """getCampaignTimeseries' answer: the seed's envelope around Timeseries."""

    success: Literal[True]
    data: Timeseries
