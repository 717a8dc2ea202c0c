"""The server's log format (issue 8 item 12): JSON lines, never a traceback, an absolute path or a message;
the access log's batches (issue 9 item 7): whole lines, written at the flush, at exit, when full."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from select import PIPE_BUF
from time import perf_counter

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

import callstats
from callstats.errors import where
from callstats.logs import (
    AccessEntry,
    AccessLog,
    whole_line_chunks,
)
from callstats.web import install_error_handlers
from tests.apps import access_to
from tests.envelope import assert_error

SECRET = "postgresql://admin:hunter2@db/prod"  # what an exception message might carry

# Run in a fresh interpreter: the server's logging set-up, then what uvicorn and callstats log.
PROGRAM = f"""
import logging.config, sqlite3
from callstats.logs import log_config, unexpected_error
logging.config.dictConfig(log_config("info"))
try:
    sqlite3.connect(":memory:").execute("SELECT * FROM {SECRET!r}")
except Exception as exc:
    logging.getLogger("uvicorn.error").error("Exception in ASGI application\\n", exc_info=exc)
    unexpected_error(exc, "rid-1", "GET", "/getCampaign/x")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42, extra={{"color_message": "x"}})
"""


def test_log_lines_are_json_without_traceback_or_message() -> None:
    """uvicorn's own error record with a traceback and callstats' line both come out as one JSON object
    each: type and where instead of the traceback, no exception message, no absolute path."""
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["event"] for line in lines] == [
        "Exception in ASGI application\n",
        "unexpected_error",
        "Started server process [42]",
    ]
    for line in lines:
        assert {"time", "level", "logger", "event"} <= set(line)
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None
    uvicorn_error, ours, started = lines
    assert uvicorn_error["level"] == "ERROR" and uvicorn_error["exc_type"] == "OperationalError"
    assert "exc_info" not in uvicorn_error and "color_message" not in started
    assert ours == {
        "time": ours["time"],
        "level": "ERROR",
        "logger": "callstats.errors",
        "event": "unexpected_error",
        "request_id": "rid-1",
        "method": "GET",
        "path": "/getCampaign/x",
        "exc_type": "OperationalError",
        "where": "<string>:6 in <module>",
    }
    for leak in ("Traceback", "hunter2", "SELECT", sys.prefix, str(Path(callstats.__file__).parent)):
        assert leak not in done.stderr, leak


def test_where_is_relative_to_the_package() -> None:
    """An error in callstats' code is named by its package path and function; in a library, by its
    path under site-packages; never by an absolute path."""
    from callstats.stats.response import iso_utc

    with pytest.raises(OverflowError) as raised:
        iso_utc(2**62)
    # The innermost frame names the place: iso_utc's per-minute helper, where the date overflows.
    assert re.fullmatch(r"callstats/stats/response\.py:\d+ in _iso_minute", where(raised.value))
    with pytest.raises(httpx.InvalidURL) as library:
        httpx.URL("http://[::1")
    assert where(library.value).startswith("httpx/") and not where(library.value).startswith("/")


class _Body(BaseModel):
    name: str


async def test_the_framework_body_parser_is_a_400_validation_error() -> None:
    """Item 10 for any route that lets FastAPI parse its body: invalid or 100,000-deep JSON is a 400
    VALIDATION_ERROR through the same handlers (never INTERNAL_SERVER_ERROR)."""
    api = FastAPI()
    install_error_handlers(api)

    @api.post("/body")
    def take(body: _Body) -> dict[str, str]:
        return {"name": body.name}

    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        headers = {"content-type": "application/json"}
        for content in (b"[" * 100_000, b'{"name": ', b'{"a":' * 100_000):
            assert_error(await http.post("/body", content=content, headers=headers), 400, "VALIDATION_ERROR")
        assert (await http.post("/body", json={"name": "ok"})).json() == {"name": "ok"}


def entry(request_id: str, status: int | None = 200, ended: float | None = None) -> AccessEntry:
    """One request's access entry, 1.5 ms long, ending now (perf_counter) unless `ended` says."""
    end = perf_counter() if ended is None else ended
    route = "/getCampaignStats/{campaignId}"
    return ("GET", route, status, end - 0.0015, end, request_id, "2b1e3f9c-6c1f-4b6a-9c1e-1e6c3b1f2a9d")


def test_whole_line_chunks_never_split_a_line_and_fit_a_pipe_write() -> None:
    """Every chunk is whole lines ending in a newline, at most PIPE_BUF bytes (a pipe writes that
    atomically, so workers sharing stderr never interleave inside a line), except a longer line alone."""
    lines = [f'{{"n":{n},"pad":"{"x" * (n * 37 % 700)}"}}' for n in range(400)] + ["y" * (PIPE_BUF + 10), "z"]
    chunks = whole_line_chunks(lines)
    assert "".join(chunks) == "\n".join(lines) + "\n"
    assert all(chunk.endswith("\n") for chunk in chunks)
    assert all(len(chunk) <= PIPE_BUF or chunk.count("\n") == 1 for chunk in chunks)
    assert len(chunks) < len(lines) / 3  # batched, not a write per line
    assert whole_line_chunks([]) == []


async def test_access_lines_wait_for_the_flush_then_are_json_lines() -> None:
    """Entries are kept until the timer's flush, then each is one JSON line with every field; the
    time is when its request ended, not when the batch was written."""
    stream = io.StringIO()
    with access_to(stream):
        waiting = AccessLog(flush_seconds=0.05)
        long_ago = perf_counter() - 30
        waiting.add(entry("rid-a", ended=long_ago))
        waiting.add(entry("rid-b", status=None))
        assert stream.getvalue() == ""
        await asyncio.sleep(0.5)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["rid-a", "rid-b"]
    assert lines[1] == {
        "time": lines[1]["time"],
        "level": "INFO",
        "logger": "callstats.access",
        "event": "request",
        "method": "GET",
        "route": "/getCampaignStats/{campaignId}",
        "status": None,
        "duration_ms": 1.5,
        "request_id": "rid-b",
        "campaign_id": "2b1e3f9c-6c1f-4b6a-9c1e-1e6c3b1f2a9d",
    }
    first, second = (datetime.fromisoformat(line["time"]) for line in lines)
    assert first.utcoffset() is not None and 29 < (second - first).total_seconds() < 31
    assert abs(second.timestamp() - time.time()) < 5
    assert waiting.entries == []


async def test_a_full_buffer_is_written_at_once() -> None:
    """`max_entries` waiting entries are written without waiting for the timer (the buffer is bounded)."""
    stream = io.StringIO()
    with access_to(stream):
        waiting = AccessLog(flush_seconds=3600, max_entries=3)
        for number in range(7):
            waiting.add(entry(f"rid-{number}"))
        written = [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()]
        assert written == [f"rid-{n}" for n in range(6)] and len(waiting.entries) == 1
        waiting.flush()
        assert len(stream.getvalue().splitlines()) == 7


async def test_the_demo_gets_one_plain_text_record_per_entry() -> None:
    """With any handler but AccessHandler (the demo's plain formatter), each entry is an ordinary
    record whose time is the request's."""
    stream = io.StringIO()
    with access_to(stream, human=True):
        waiting = AccessLog(flush_seconds=3600)
        waiting.add(entry("demo-1", ended=perf_counter() - 3600))
        waiting.flush()
    line = stream.getvalue()
    stamp = datetime.fromtimestamp(time.time() - 3600).strftime("%Y-%m-%d %H")
    assert re.fullmatch(
        stamp + r":\d\d:\d\d,\d{3} GET /getCampaignStats/\{campaignId\} 200 1.50 ms id=demo-1\n", line
    ), line


# A served process's logging set-up, then entries left waiting with a timer that never fires.
AT_EXIT = """
import asyncio, logging.config
from time import perf_counter
from callstats.logs import AccessLog, log_config
logging.config.dictConfig(log_config("warning"))
waiting = AccessLog(flush_seconds=3600)
async def serve():
    for number in range(3):
        end = perf_counter()
        waiting.add(("GET", "/health", 200, end, end, f"exit-{number}", None))
asyncio.run(serve())
"""


def test_waiting_lines_are_written_at_exit() -> None:
    """A process that ends normally with entries still waiting writes them on its way out."""
    done = subprocess.run([sys.executable, "-c", AT_EXIT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["request_id"], line["route"]) for line in lines] == [
        (f"exit-{n}", "/health") for n in range(3)
    ]
