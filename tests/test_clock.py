"""clock.epoch_ms: the one conversion of a datetime to the schema's epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from callstats.clock import epoch_ms


def test_epoch_ms_reads_offsets_and_takes_naive_times_as_utc() -> None:
    """A time with an offset is converted; one without is UTC; milliseconds are kept exactly."""
    moment = datetime(2024, 1, 16, 9, 0, 0, 123_000, tzinfo=UTC)
    assert epoch_ms(moment) == 1_705_395_600_123
    assert epoch_ms(moment.replace(tzinfo=None)) == 1_705_395_600_123
    assert epoch_ms(moment.astimezone(timezone(timedelta(hours=-5)))) == 1_705_395_600_123
    assert epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1  # cut toward the past
