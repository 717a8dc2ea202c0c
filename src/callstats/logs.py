"""The server's log: one JSON object per line on stderr, never a traceback.

Every line has `time` (ISO 8601 UTC), `level`, `logger` and `event` (a short name such as
`unexpected_error`, or uvicorn's own sentence), plus the fields the call site adds. The formatter
is python-json-logger's (stdlib logging, so uvicorn's lines and every library's come out the same
way, and uvicorn applies it in each worker process); a filter on the handler replaces any
traceback by the exception's type and where it was raised, relative to the package
(errors.where): no absolute path, no exception message (it may quote SQL or a secret).

The access log is the logger `callstats.access`, fed in batches off the request path: a request
appends a tuple to an AccessLog, whose flush (every FLUSH_SECONDS, and at shutdown) renders the
waiting entries with the same JSON formatter and writes them together through an AccessHandler for
`serve`, or as ordinary records through a plain `logging.Formatter` (one human line each) for the
demo (`log_config(..., human=True)`).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from select import PIPE_BUF
from time import perf_counter
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, BaseJsonFormatter

from callstats.errors import where

log = logging.getLogger("callstats.errors")
access_log = logging.getLogger("callstats.access")
MAX_PATH_CHARS = 200  # a logged path is cut there: a hostile URL cannot flood the log
HUMAN_ACCESS_FORMAT = "%(asctime)s %(method)s %(route)s %(status)s %(duration_ms).2f ms id=%(request_id)s"
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FLUSH_SECONDS = 0.1  # an access line is written at most this long after its request ended
FLUSH_ENTRIES = 1000  # ... or as soon as this many wait (the most kept in memory)

# method, route template, status, start and end (perf_counter seconds), request id, campaign id
AccessEntry = tuple[str, str | None, int | None, float, float, str, str | None]


class NoTraceback(logging.Filter):
    """Drop a record's traceback and stack; keep the exception's type (`exc_type`) and `where`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record (returns True), rewritten without traceback or stack."""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.__dict__.setdefault("exc_type", type(exc).__name__)
            record.__dict__.setdefault("where", where(exc))
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def log_config(level: str, human: bool = False) -> dict[str, Any]:
    """A `logging.config.dictConfig` (uvicorn's `log_config`): JSON lines on stderr at `level`.

    `level` is a logging level name, any case (`info`, `WARNING`). The access log's logger is at
    INFO whatever `level` is: CALLSTATS_ACCESS_LOG alone switches it. `human=True` (the demo) gives
    plain text lines instead of JSON, an access line reading `time GET /route 200 0.4 ms id=...`.
    """
    # JSON: the access lines come in batches through an AccessHandler with the same formatter;
    # human: ordinary records through a StreamHandler with the access lines' own format.
    access: dict[str, Any] = {"class": "logging.StreamHandler", "formatter": "access"}
    if not human:
        access = {"()": "callstats.logs.AccessHandler", "formatter": "stderr"}  # by name: JSON-safe
    handlers = {"stderr": {"class": "logging.StreamHandler", "formatter": "stderr"}, "access": access}
    for handler in handlers.values():
        handler.update({"stream": "ext://sys.stderr", "filters": ["no_traceback"]})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"no_traceback": {"()": NoTraceback}},
        "formatters": _formatters(human),
        "handlers": handlers,
        "loggers": {
            **{
                name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
                for name in ("uvicorn", "uvicorn.access")
            },
            access_log.name: {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


def _formatters(human: bool) -> dict[str, Any]:
    """A fresh dict each time: dictConfig may consume what it is given."""
    if human:
        return {"stderr": {"format": HUMAN_FORMAT}, "access": {"format": HUMAN_ACCESS_FORMAT}}
    return {
        "stderr": {
            "()": "pythonjsonlogger.orjson.OrjsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger", "message": "event"},
            "timestamp": "time",
            # uvicorn adds an ANSI-coloured copy of its message to each record.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message", "taskName"],
        }
    }


class AccessHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The access logger's handler for `serve`: a StreamHandler (a record logged to it the ordinary
    way is formatted and written as usual) that also writes a batch of access entries at once.

    Each entry becomes one line, its fields rendered by the handler's formatter's JSON serializer
    (python-json-logger's orjson formatter, the one every other line goes through), without a
    `LogRecord`; the lines go out in as few writes as possible, each at most PIPE_BUF bytes and
    ending at a line's end, so that lines from several worker processes sharing one pipe never
    interleave within a line.
    """

    def write_entries(self, entries: list[AccessEntry], wall_offset: float) -> None:
        """Write one line per entry; `wall_offset` turns an entry's perf_counter time into Unix time."""
        formatter = self.formatter
        if not isinstance(formatter, BaseJsonFormatter):  # a plain formatter: one record per line
            for entry in entries:
                self.handle(access_record(entry, wall_offset))
            return
        render = formatter.jsonify_log_record
        lines = [render(fields) for fields in access_fields(entries, wall_offset)]
        with self.lock if self.lock is not None else nullcontext():
            for chunk in whole_line_chunks(lines):
                self.stream.write(chunk)
            self.flush()


def whole_line_chunks(lines: list[str], limit: int = PIPE_BUF) -> list[str]:
    """`lines` joined into chunks of whole lines, each ending with a newline and, unless one line is
    longer on its own, at most `limit` bytes (PIPE_BUF: a pipe writes that much atomically).
    Access lines are ASCII (route templates, methods, sane or hex ids), so characters count bytes."""
    chunks: list[str] = []
    start, size = 0, 0
    for end, line in enumerate(lines):
        grown = size + len(line) + 1
        if grown > limit and end > start:
            chunks.append("\n".join(lines[start:end]) + "\n")
            start, grown = end, len(line) + 1
        size = grown
    if start < len(lines):
        chunks.append("\n".join(lines[start:]) + "\n")
    return chunks


def access_fields(entries: list[AccessEntry], wall_offset: float) -> Iterator[dict[str, Any]]:
    """The fields of each entry's line, in the order a JSON line shows them; one at a time, so each
    dict is freed once rendered (a batch of live dicts would set off the garbage collector)."""
    name = access_log.name
    return (
        {
            "time": datetime.fromtimestamp(ended + wall_offset, UTC),
            "level": "INFO",
            "logger": name,
            "event": "request",
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round((ended - started) * 1_000_000) / 1000,  # 3 decimals, faster than round(x, 3)
            "request_id": request_id,
            "campaign_id": campaign_id,
        }
        for method, route, status, started, ended, request_id, campaign_id in entries
    )


def access_record(entry: AccessEntry, wall_offset: float) -> logging.LogRecord:
    """One entry as a stdlib record (INFO, message `request`, the fields as attributes, `created` the
    time the answer ended), for any handler other than AccessHandler (the demo's plain text)."""
    [fields] = access_fields([entry], wall_offset)
    created = fields.pop("time").timestamp()
    for name in ("level", "logger", "event"):
        del fields[name]
    record = access_log.makeRecord(access_log.name, logging.INFO, "", 0, "request", (), None, extra=fields)
    record.created, record.msecs = created, (created - int(created)) * 1000 // 1
    return record


class AccessLog:
    """The access lines of one app, kept in memory and written in batches, off the request path.

    A request appends a small tuple (`add`); `flush` renders every waiting entry and writes them
    together. A flush runs `flush_seconds` after the first entry into an empty buffer (a timer on
    the event loop), at once when `max_entries` wait, at the app's shutdown (the Dispatcher calls
    it at the ASGI lifespan's shutdown) and at interpreter exit. So a line appears at most
    `flush_seconds` after its request ended; a process killed outright (SIGKILL) loses at most
    that long's lines. Writing stays synchronous in the event loop, like every other log line: a
    reader that stops reading stderr stalls the server rather than losing lines, and the buffer
    never holds more than `max_entries`.
    """

    def __init__(self, flush_seconds: float = FLUSH_SECONDS, max_entries: int = FLUSH_ENTRIES) -> None:
        self.flush_seconds = flush_seconds
        self.max_entries = max_entries
        self.entries: list[AccessEntry] = []
        self._timer: asyncio.TimerHandle | None = None
        _open_access_logs.add(self)

    def add(self, entry: AccessEntry) -> None:
        """Keep one request's entry: (method, route template or None, status or None, start and end
        as `perf_counter` seconds, request id, campaign id or None)."""
        entries = self.entries
        entries.append(entry)
        if len(entries) >= self.max_entries:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)
            except RuntimeError:  # no event loop (a synchronous caller): nothing to wait for
                self.flush()

    def flush(self) -> None:
        """Write every waiting entry now (nothing when none wait or the access logger is off)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        entries, self.entries = self.entries, []
        if entries and access_log.isEnabledFor(logging.INFO):
            write_access(entries)


def write_access(entries: list[AccessEntry]) -> None:
    """Hand entries to the access logger's handlers: AccessHandlers take the batch; with any other
    set-up (a `--log-config` of the operator's, the demo's plain text) each entry is an ordinary
    record through `Logger.handle`, with its filters, handlers and propagation."""
    wall_offset = time.time() - perf_counter()
    handlers = access_log.handlers
    if handlers and not access_log.propagate and all(type(h) is AccessHandler for h in handlers):
        for handler in handlers:
            assert isinstance(handler, AccessHandler)
            handler.write_entries(entries, wall_offset)
        return
    for entry in entries:
        access_log.handle(access_record(entry, wall_offset))


_open_access_logs: weakref.WeakSet[AccessLog] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for waiting in list(_open_access_logs):
        waiting.flush()


def unexpected_error(exc: BaseException, request_id: str, method: str, path: str) -> None:
    """Log one line for an unexpected error: the request's id, method and path, the exception's type
    and where it was raised. Never its message, which may carry SQL or a secret."""
    log.error(
        "unexpected_error",
        extra={
            "request_id": request_id,
            "method": method,
            "path": path[:MAX_PATH_CHARS],
            "exc_type": type(exc).__name__,
            "where": where(exc),
        },
    )


def backend_unavailable(exc: BaseException, method: str, path: str) -> None:
    """Log one line for a request answered 503 because a backend cannot be reached (no message)."""
    log.warning(
        "backend_unavailable",
        extra={"method": method, "path": path[:MAX_PATH_CHARS], "exc_type": type(exc).__name__},
    )


def event_not_stored(exc: BaseException, event_id: object, index: int) -> None:
    """Log one line for an event the database refused (answered `rejected`, its neighbours stored):
    its `event_id` (when a string, cut at 128 characters), its index in its request, the exception's
    type and where it was raised."""
    log.warning(
        "event_not_stored",
        extra={
            "event_id": event_id[:128] if isinstance(event_id, str) else None,
            "index": index,
            "exc_type": type(exc).__name__,
            "where": where(exc),
        },
    )
