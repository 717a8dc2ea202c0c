"""TurnBatches: one batch per event-loop turn, answers in order, errors to their own callers."""

from __future__ import annotations

import asyncio

import pytest

from callstats.turns import TurnBatches


async def test_calls_of_one_turn_share_a_batch_and_get_their_own_answers() -> None:
    """Ten calls made together run as one batch; each gets the answer for its own item."""
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        batches.append(items)
        return [item * 10 for item in items]

    turns: TurnBatches[int, int] = TurnBatches(run, limit=2)
    assert await asyncio.gather(*(turns(n) for n in range(10))) == [n * 10 for n in range(10)]
    assert batches == [list(range(10))]


async def test_at_most_limit_batches_run_and_later_calls_wait_for_a_new_one() -> None:
    """With one batch under way, calls made meanwhile go to the next batch, started after it ends."""
    release = asyncio.Event()
    batches: list[list[str]] = []

    async def run(items: list[str]) -> list[str]:
        batches.append(items)
        await release.wait()
        return items

    turns: TurnBatches[str, str] = TurnBatches(run, limit=1)
    first = asyncio.ensure_future(turns("a"))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(turns(x)) for x in ("b", "c")]
    await asyncio.sleep(0.01)
    assert batches == [["a"]]
    release.set()
    assert await first == "a" and await asyncio.gather(*later) == ["b", "c"]
    assert batches == [["a"], ["b", "c"]]


async def test_an_error_fails_its_batch_and_the_queue_only_when_asked() -> None:
    """A failing batch fails its callers; `fails_waiting` also fails the calls queued behind it."""
    for fails_waiting, runs_expected in ((True, 1), (False, 2)):
        release = asyncio.Event()
        runs: list[list[str]] = []

        async def run(
            items: list[str], release: asyncio.Event = release, runs: list[list[str]] = runs
        ) -> list[str]:
            runs.append(items)
            await release.wait()
            raise ConnectionError("gone")

        def fails(_exc: Exception, f: bool = fails_waiting) -> bool:
            return f

        turns: TurnBatches[str, str] = TurnBatches(run, 1, fails)
        first = asyncio.ensure_future(turns("a"))
        await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(turns("b"))
        await asyncio.sleep(0.01)
        release.set()
        for call in (first, queued):
            with pytest.raises(ConnectionError):
                await call
        assert len(runs) == runs_expected  # failed with the first batch, or in a batch of its own
