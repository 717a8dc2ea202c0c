"""The app in process for the tests: an app with its own settings, more clients, the access logger."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
from pythonjsonlogger.orjson import OrjsonFormatter

from callstats.app import CallstatsApp, create_app
from callstats.config import Settings
from callstats.logs import HUMAN_ACCESS_FORMAT, AccessHandler, access_log, log_config


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[CallstatsApp, httpx.AsyncClient]]:
    """An app of its own (custom settings) and a client talking to it."""
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://callstats.test") as http:
            yield application, http
    finally:
        await application.aclose()


def http_client(app: CallstatsApp) -> httpx.AsyncClient:
    """One more client of the app."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://callstats.test", timeout=120
    )


@contextmanager
def access_to(stream: io.StringIO, human: bool = False) -> Iterator[None]:
    """The access logger writing to `stream` as `serve` does (as the demo does: `human`), then restored."""
    saved = access_log.handlers[:], access_log.propagate, access_log.level, access_log.disabled
    handler: logging.Handler
    if human:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(HUMAN_ACCESS_FORMAT))
    else:
        settings = {k: v for k, v in log_config("info")["formatters"]["stderr"].items() if k != "()"}
        handler = AccessHandler(stream)
        handler.setFormatter(OrjsonFormatter(**settings))
    access_log.handlers[:] = [handler]
    access_log.propagate, access_log.disabled = False, False
    access_log.setLevel(logging.INFO)  # setLevel, not the attribute: it clears isEnabledFor's cache
    try:
        yield
    finally:
        access_log.handlers[:], access_log.propagate, level, access_log.disabled = saved
        access_log.setLevel(level)
