"""The server's log: one JSON object per line on stderr, never a traceback.

Every line has `time` (ISO 8601 UTC), `level`, `logger` and `event` (a short name such as
`unexpected_error`, or uvicorn's own sentence), plus the fields the call site adds. The formatter
is python-json-logger's (stdlib logging, so uvicorn's lines and every library's come out the same
way, and uvicorn applies it in each worker process); a filter on the handler replaces any
traceback by the exception's type and where it was raised, relative to the package
(errors.where): no absolute path, no exception message (it may quote SQL or a secret).
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

from callstats.errors import where

log = logging.getLogger("callstats.errors")
MAX_PATH_CHARS = 200  # a logged path is cut there: a hostile URL cannot flood the log


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


def log_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` (uvicorn's `log_config`): JSON lines on stderr at `level`.

    `level` is a logging level name, any case (`info`, `WARNING`).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"no_traceback": {"()": NoTraceback}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.orjson.OrjsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger", "message": "event"},
                "timestamp": "time",
                # uvicorn adds an ANSI-coloured copy of its message to each record.
                "reserved_attrs": [*RESERVED_ATTRS, "color_message", "taskName"],
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["no_traceback"],
            }
        },
        "loggers": {
            name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.access")
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


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
