"""Wall-clock time in the unit the schema stores (epoch milliseconds)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)  # built once: a timedelta per event cost 1 us


Clock = Callable[[], int]
"""A source of the time in epoch ms: `now_ms`, or a test's own (create_app's `clock`)."""


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def epoch_ms(moment: datetime) -> int:
    """`moment` in epoch milliseconds, exactly (integer arithmetic, no float; microseconds cut, not
    rounded); a time without offset is UTC."""
    return ((moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH) // _MILLISECOND
