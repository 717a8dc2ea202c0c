"""The server's log: one JSON object per line on stderr, never a traceback.

Every line has `time` (ISO 8601 UTC), `level`, `logger` and `event` (a short name such as
`unexpected_error`, or uvicorn's own sentence), plus the fields the call site adds. The formatter
is python-json-logger's (stdlib logging, so uvicorn's lines and every library's come out the same
way, and uvicorn applies it in each worker process); a filter on the handler replaces any
traceback by the exception's type and where it was raised, relative to the package
(errors.where): no absolute path, no exception message (it may quote SQL or a secret).

The access log is the logger `callstats.access`: one record per request (`access`), its fields
as `extra` attributes, rendered by the same JSON formatter for `serve` and by a plain
`logging.Formatter` as one human line for the demo (`log_config(..., human=True)`).
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

from callstats.errors import where

log = logging.getLogger("callstats.errors")
access_log = logging.getLogger("callstats.access")
MAX_PATH_CHARS = 200  # a logged path is cut there: a hostile URL cannot flood the log
HUMAN_ACCESS_FORMAT = "%(asctime)s %(method)s %(route)s %(status)s %(duration_ms).2f ms id=%(request_id)s"
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    # JSON: one handler (one lock) for every line; human: the access lines have their own format.
    handlers = ("stderr", "access") if human else ("stderr",)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"no_traceback": {"()": NoTraceback}},
        "formatters": _formatters(human),
        "handlers": {
            name: {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": name,
                "filters": ["no_traceback"],
            }
            for name in handlers
        },
        "loggers": {
            **{
                name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
                for name in ("uvicorn", "uvicorn.access")
            },
            access_log.name: {"handlers": [handlers[-1]], "level": "INFO", "propagate": False},
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


def access(
    method: str,
    route: str | None,
    status: int | None,
    seconds: float,
    request_id: str,
    campaign_id: str | None,
) -> None:
    """Log one request's access line (INFO, event `request`): its method, route template (such as
    `/getCampaignStats/{campaignId}`; None when no route matched), status (None when no answer
    started: the client left first), duration in milliseconds from `seconds`, request id and
    campaign id. Never a raw path, query string, header or body."""
    if access_log.isEnabledFor(logging.INFO):
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": request_id,
            "campaign_id": campaign_id,
        }
        # makeRecord and handle, as Logger.info does minus findCaller's stack walk (nothing logs where
        # the call was made): ~15 % of the line's cost on the hot routes (docs/performance.md).
        access_log.handle(
            access_log.makeRecord(access_log.name, logging.INFO, "", 0, "request", (), None, extra=fields)
        )


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
