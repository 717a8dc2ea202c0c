"""Group commit: requests waiting to write are taken together and written in one transaction.

A carrier sends one event per request, so a transaction's fixed costs (its round
trips, the commit, a worker-thread hop) dwarf the event's own work. While a group
is being written, the requests that arrive queue here; the next free writer takes
them all (up to MAX_EVENTS) and `service.record_requests` applies them in arrival
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anyio.to_thread import run_sync
from sqlalchemy import Connection
from sqlalchemy.exc import StatementError

from callstats.accounts.service import writer_accounts
from callstats.calls import service
from callstats.calls.schemas import EventResult, EventRules, RecordEventsResult, raw_event_id
from callstats.db.engine import Database, is_unreachable
from callstats.errors import ApiError, InternalError
from callstats.logs import event_not_stored

MAX_EVENTS = 4_000  # per group; one request may hold up to 1,000 (schemas.MAX_EVENTS_PER_REQUEST)
Outcome = tuple[RecordEventsResult, set[str]] | Exception  # the result and the campaigns it applied to
NOT_STORED = "could not be stored: the database refused it (the request's other events are not affected)"


@dataclass
class Request:
    """One request waiting to write: its key, its events (or why its body is unusable), its outcome."""

    plaintext: str
    key_id: str
    items: list[Any] | ApiError  # a bad body is told only to a valid write key
    done: asyncio.Future[Outcome]

    def size(self) -> int:
        """How much of a group's event budget the request takes."""
        return len(self.items) if isinstance(self.items, list) else 1


class GroupCommit:
    """Takes waiting requests together: at most `writers` groups are being written at a time."""

    def __init__(self, db: Database, rules: EventRules, writers: int) -> None:
        self.db = db
        self.rules = rules
        self.writers = writers
        self.busy = 0
        self.waiting: deque[Request] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, plaintext: str, key_id: str, items: list[Any] | ApiError) -> Outcome:
        """Write one request's events with whichever others are waiting; its own outcome."""
        request = Request(plaintext, key_id, items, asyncio.get_running_loop().create_future())
        self.waiting.append(request)
        if self.busy < self.writers:
            self.busy += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(request.done)  # a client that leaves does not cancel others' write

    async def _drain(self) -> None:
        """Write groups while requests wait."""
        try:
            while self.waiting:
                group = [self.waiting.popleft()]
                budget = MAX_EVENTS - group[0].size()
                while self.waiting and self.waiting[0].size() <= budget:
                    budget -= self.waiting[0].size()
                    group.append(self.waiting.popleft())
                outcomes: list[Outcome] = [RuntimeError("write abandoned")] * len(group)
                try:
                    outcomes = await run_sync(self.write, group)
                    self._fail_waiting_if_unreachable(outcomes[0])
                finally:  # only a cancelled run leaves the placeholders: never leave a request hanging
                    for request, outcome in zip(group, outcomes, strict=True):
                        if not request.done.done():
                            request.done.set_result(outcome)
        finally:
            self.busy -= 1

    def _fail_waiting_if_unreachable(self, outcome: Outcome) -> None:
        """The database did not answer: the requests queued meanwhile get the same 503 now, not after
        another timeout of their own (nothing of theirs was written)."""
        if isinstance(outcome, Exception) and is_unreachable(outcome):
            while self.waiting:
                self.waiting.popleft().done.set_result(outcome)

    def write(self, group: list[Request]) -> list[Outcome]:
        """Write a group in one transaction; if that fails, each request alone (in a worker thread)."""
        try:
            results = service.record_requests(
                self.db, _checked(group), [_events(r) for r in group], self.rules
            )
        except Exception as exc:
            if is_unreachable(exc):  # alone, each would wait out the timeout again
                return [exc] * len(group)
            if len(group) == 1:
                return [self._event_by_event(group[0], exc)]
            return [self.write([request])[0] for request in group]
        return [
            result
            if isinstance(result, Exception)
            else (result, service.applied_campaigns(_events(r), result))
            for r, result in zip(group, results, strict=True)
        ]

    def _event_by_event(self, request: Request, failure: Exception) -> Outcome:
        """A request whose own transaction failed with `failure`: when the database refused a value,
        its events in one transaction each, in order, so that only the event that caused the error is
        rejected (`INTERNAL_SERVER_ERROR`, NOT_STORED) and the others are applied or duplicates as
        usual. Any other failure (a bug, the database gone) stays the whole request's outcome."""
        if not (_refused_value(failure) and isinstance(request.items, list)):
            return failure
        results: list[EventResult] = []
        campaigns: set[str] = set()
        for index, item in enumerate(request.items):
            try:
                outcome = service.record_requests(self.db, _checked([request]), [[item]], self.rules)[0]
            except Exception as exc:
                if is_unreachable(exc) or not _refused_value(exc):
                    return exc
                event_not_stored(exc, raw_event_id(item), index)
                code = InternalError.code
                results.append(EventResult(index, raw_event_id(item), "rejected", code, NOT_STORED))
                continue
            if isinstance(outcome, Exception):  # the key, checked again in each transaction
                return outcome
            campaigns |= service.applied_campaigns([item], outcome)
            result = outcome.results[0]
            result.index = index  # its place in the request, not in its one-event transaction
            results.append(result)
        return RecordEventsResult.tallied(results), campaigns


def _refused_value(exc: Exception) -> bool:
    """Whether the database (or its driver) refused a statement's values: a constraint, a value too
    long or out of range, a character the encoding cannot hold. Not a bug of ours, not an outage."""
    return isinstance(exc, StatementError | OverflowError | UnicodeError) and not is_unreachable(exc)


def _events(request: Request) -> list[Any]:
    return request.items if isinstance(request.items, list) else []


def _checked(group: list[Request]) -> Callable[[Connection], list[str | Exception]]:
    """Each request's account, checked in the transaction: a bad body is told only to a valid write key."""

    def check(conn: Connection) -> list[str | Exception]:
        accounts = writer_accounts(conn, [(r.plaintext, r.key_id) for r in group])
        return [
            r.items if isinstance(account, str) and isinstance(r.items, ApiError) else account
            for r, account in zip(group, accounts, strict=True)
        ]

    return check
