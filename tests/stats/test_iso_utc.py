"""stats.response.iso_utc against the standard library's own formatting of the same instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstats.stats.response import iso_utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_MS = int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) / timedelta(milliseconds=1))
_LAST_MS = int((datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) / timedelta(milliseconds=1))


def _oracle(epoch_ms: int) -> str:
    instant = _EPOCH + timedelta(milliseconds=epoch_ms)
    text = instant.isoformat(timespec="milliseconds").removesuffix("+00:00")
    return text.removesuffix(".000") + "Z"


@given(st.integers(_FIRST_MS, _LAST_MS))
def test_any_instant_of_years_1_to_9999_reads_as_isoformat_gives_it(epoch_ms: int) -> None:
    assert iso_utc(epoch_ms) == _oracle(epoch_ms)


@pytest.mark.parametrize("epoch_ms", [0, -1, 1, 86_399_999, 86_400_000, -86_400_000, _FIRST_MS, _LAST_MS])
def test_day_edges_and_the_ends_of_the_range(epoch_ms: int) -> None:
    assert iso_utc(epoch_ms) == _oracle(epoch_ms)


@pytest.mark.parametrize("epoch_ms", [_FIRST_MS - 1, _LAST_MS + 1])
def test_outside_years_1_to_9999_is_an_overflow(epoch_ms: int) -> None:
    with pytest.raises(OverflowError):
        iso_utc(epoch_ms)


def test_none_is_none() -> None:
    assert iso_utc(None) is None
