"""TurnBatches: the calls made in one event-loop turn, sent to a backend as one batch.

Each call waits for a batch that starts after it arrived, so a batch sees everything
acknowledged before any of its calls was made: batching saves round trips, never freshness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class TurnBatches(Generic[In, Out]):
    """Gathers calls into batches run by `run` (one answer per item, in order), at most `limit` at once."""

    def __init__(
        self,
        run: Callable[[list[In]], Awaitable[list[Out]]],
        limit: int,
        fails_waiting: Callable[[Exception], bool] = lambda _exc: False,
    ) -> None:
        self.run = run
        self.limit = limit
        self.fails_waiting = fails_waiting  # an error that would fail the next batch too fails it now
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: In) -> Out:
        """The answer for one item, from the next batch."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._start)
        return await future

    async def drain(self) -> None:
        """Wait for the batches under way."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self) -> None:
        if not self._waiting or self._running >= self.limit:
            return  # a batch that ends starts the next one
        batch, self._waiting = self._waiting, []
        self._running += 1
        task = asyncio.ensure_future(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            answers = await self.run([item for item, _ in batch])
        except Exception as exc:
            if self.fails_waiting(exc):
                batch, self._waiting = batch + self._waiting, []
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
        finally:
            self._running -= 1
            self._start()
