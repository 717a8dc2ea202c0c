"""The server's log format (issue 8 item 12): JSON lines, never a traceback, an absolute path or a message."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

import callstats
from callstats.errors import where
from callstats.web import install_error_handlers
from tests.test_errors import assert_error

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
    assert where(raised.value).startswith("callstats/stats/response.py:")
    assert where(raised.value).endswith(" in iso_utc")
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
