"""Group commit: requests waiting to write are taken together and written in one transaction.

A carrier sends one event per request, so a transaction's fixed costs (its round
trips, the commit, a worker-thread hop) dwarf the event's own work. While a group
is being written, the requests that arrive queue here; the next free writer takes
them all (up to MAX_EVENTS) and `service.record_group` applies them in arrival
order, request by request, exactly as if they had run one after another. Each
request is checked with its own key and only touches its own account's rows. A
request is answered only after its group's commit. When a shared transaction fails,
each of its requests runs again alone, so one request's problem never fails or
half-stores another's; when a request's own transaction fails because the database
refused a value, its events run one transaction each, so the database error rejects
only the event that caused it (issue 8: the per-event promise holds whatever happens).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, replace

from anyio.to_thread import run_sync
from sqlalchemy.exc import StatementError

from callstats.calls import service
from callstats.calls.schemas import EventResult, EventRules, RecordEventsResult, raw_event_id
from callstats.calls.service import WriteRequest, Written
from callstats.db.engine import Database, is_unreachable
from callstats.errors import InternalError
from callstats.logs import event_not_stored
from callstats.metrics.instruments import Metrics

MAX_EVENTS = 4_000  # per group; one request may hold up to 1,000 (schemas.MAX_EVENTS_PER_REQUEST)
WRITERS = 2  # groups written at a time: more threads only contend for the GIL and the database's locks
NOT_STORED = "could not be stored: the database refused it (the request's other events are not affected)"


@dataclass
class Waiting:
    """A request waiting for its group to be written, and where its outcome goes."""

    request: WriteRequest
    done: asyncio.Future[Written]

    def size(self) -> int:
        """How much of a group's event budget the request takes (a bad body: 1)."""
        return len(self.request.items) or 1


class GroupCommit:
    """Takes waiting requests together: at most `writers` groups are being written at a time; each
    request's committed events counted by result in `metrics` (once per request) when given."""

    def __init__(
        self, db: Database, rules: EventRules, writers: int = WRITERS, metrics: Metrics | None = None
    ) -> None:
        self.db = db
        self.rules = rules
        self.writers = writers
        self.metrics = metrics
        self.busy = 0
        self.waiting: deque[Waiting] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, request: WriteRequest) -> Written:
        """Write one request's events with whichever others are waiting; its own outcome."""
        waiting = Waiting(request, asyncio.get_running_loop().create_future())
        self.waiting.append(waiting)
        if self.busy < self.writers:
            self.busy += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(waiting.done)  # a client that leaves does not cancel others' write

    async def _drain(self) -> None:
        """Write groups while requests wait."""
        try:
            while self.waiting:
                group = self._next_group()
                outcomes = [Written(error=RuntimeError("write abandoned"))] * len(group)
                try:
                    outcomes = await run_sync(self.write, [w.request for w in group])
                    self._count(outcomes)
                    self._fail_waiting_if_unreachable(outcomes[0])
                finally:  # only a cancelled run leaves the placeholders: never leave a request hanging
                    for waiting, outcome in zip(group, outcomes, strict=True):
                        if not waiting.done.done():
                            waiting.done.set_result(outcome)
        finally:
            self.busy -= 1

    def _next_group(self) -> list[Waiting]:
        """The requests waiting first, as many as fit MAX_EVENTS (at least one)."""
        group = [self.waiting.popleft()]
        budget = MAX_EVENTS - group[0].size()
        while self.waiting and self.waiting[0].size() <= budget:
            budget -= self.waiting[0].size()
            group.append(self.waiting.popleft())
        return group

    def _count(self, outcomes: list[Written]) -> None:
        """Count each request's committed events by result: three additions a request, not one an event."""
        if self.metrics is None:
            return
        for outcome in outcomes:
            result = outcome.result
            if result is not None:
                self.metrics.events_written(result.applied, result.duplicate, result.rejected)

    def _fail_waiting_if_unreachable(self, outcome: Written) -> None:
        """The database did not answer: the requests queued meanwhile get the same 503 now, not after
        another timeout of their own (nothing of theirs was written)."""
        if outcome.error is not None and is_unreachable(outcome.error):
            while self.waiting:
                self.waiting.popleft().done.set_result(outcome)

    def write(self, group: list[WriteRequest]) -> list[Written]:
        """Write a group in one transaction; if that fails, each request alone (in a worker thread)."""
        try:
            return service.record_group(self.db, group, self.rules)
        except Exception as exc:
            if is_unreachable(exc):  # alone, each would wait out the timeout again
                return [Written(error=exc)] * len(group)
            if len(group) == 1:
                return [self._event_by_event(group[0], exc)]
            return [self.write([request])[0] for request in group]

    def _event_by_event(self, request: WriteRequest, failure: Exception) -> Written:
        """A request whose own transaction failed with `failure`: when the database refused a value,
        its events in one transaction each, in order, so that only the event that caused the error is
        rejected (`INTERNAL_SERVER_ERROR`, NOT_STORED) and the others are applied or duplicates as
        usual; its receipt, if any, last, in a transaction of its own. Any other failure (a bug, the
        database gone) stays the whole request's outcome."""
        if not _refused_value(failure) or request.problem is not None:
            return Written(error=failure)
        written = self._each_event(replace(request, receipt=None))
        receipt = request.receipt
        if receipt is not None and written.error is None:
            self.db.write(lambda conn: receipt.write(conn, written))
        return written

    def _each_event(self, request: WriteRequest) -> Written:
        """The request's events in one transaction each (see _event_by_event)."""
        results: list[EventResult] = []
        campaigns: set[str] = set()
        for index, item in enumerate(request.items):
            try:
                alone = service.record_group(self.db, [replace(request, items=[item])], self.rules)[0]
            except Exception as exc:
                if is_unreachable(exc) or not _refused_value(exc):
                    return Written(error=exc)
                event_not_stored(exc, raw_event_id(item), index)
                code = InternalError.code
                results.append(EventResult(index, raw_event_id(item), "rejected", code, NOT_STORED))
                continue
            if alone.result is None:  # the key, checked again in each transaction
                return alone
            campaigns |= alone.campaigns
            result = alone.result.results[0]
            result.index = index  # its place in the request, not in its one-event transaction
            results.append(result)
        return Written(RecordEventsResult.tallied(results), frozenset(campaigns))


def _refused_value(exc: Exception) -> bool:
    """Whether the database (or its driver) refused a statement's values: a constraint, a value too
    long or out of range, a character the encoding cannot hold. Not a bug of ours, not an outage."""
    return isinstance(exc, StatementError | OverflowError | UnicodeError) and not is_unreachable(exc)
