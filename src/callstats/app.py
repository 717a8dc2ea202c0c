"""create_app(settings): the routers, the error handler, the lifespan and the stats hot path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from anyio.to_thread import run_sync
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from typing_extensions import TypedDict

from callstats import __version__
from callstats.calls.endpoint import PATH as EVENTS_PATH
from callstats.calls.endpoint import RecordEventsEndpoint
from callstats.calls.schemas import EventRules
from callstats.campaigns.routes import router as campaigns_router
from callstats.config import Settings
from callstats.dashboard.routes import install_dashboard
from callstats.db.deps import Db
from callstats.db.engine import Database
from callstats.errors import ServiceUnavailable
from callstats.feed import cancelled
from callstats.openapi import describe, install_docs, operation_id
from callstats.ratelimit import StatsRateLimiter
from callstats.serving import exit_deadline_on_signal
from callstats.stats.routes import PATH_PREFIX, StatsEndpoint
from callstats.stream.routes import install_streaming
from callstats.timeseries.routes import router as timeseries_router
from callstats.web import Dispatcher, install_error_handlers

log = logging.getLogger("callstats")
BackgroundTask = Callable[[Database], Coroutine[Any, Any, None]]

health_router = APIRouter(tags=["health"])


class Health(TypedDict):
    """The process is up, and runs this version of callstats."""

    status: Literal["ok"]
    version: str


class HealthEnvelope(TypedDict):
    """/health's answer (the route's declared model, so /openapi.json is this)."""

    success: Literal[True]
    data: Health


class Ready(TypedDict):
    """The database answered a query."""

    status: Literal["ready"]


class ReadyEnvelope(TypedDict):
    """/ready's answer (the route's declared model, so /openapi.json is this)."""

    success: Literal[True]
    data: Ready


@health_router.get("/health")
def health() -> HealthEnvelope:
    """The process is up: `{"success": true, "data": {"status": "ok", "version": ...}}`; no key."""
    return {"success": True, "data": {"status": "ok", "version": __version__}}


@health_router.get("/ready")
async def ready(db: Db) -> ReadyEnvelope:
    """The database answers: `{"status": "ready"}`; no key. 503 (with Retry-After) when it does not."""

    def ping() -> None:
        with db.read() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await run_sync(ping)
    except Exception:
        raise ServiceUnavailable("Database unreachable") from None
    return {"success": True, "data": {"status": "ready"}}


class CallstatsApp(Dispatcher):
    """The ASGI application, with handles on what tests and the CLI need."""

    def __init__(self, api: FastAPI, stats: StatsEndpoint, settings: Settings, db: Database) -> None:
        events = RecordEventsEndpoint(db, api.state.feed, EventRules.from_settings(settings))
        super().__init__(api, stats, PATH_PREFIX, settings.max_body_bytes, {EVENTS_PATH: events})
        self.settings = settings
        self.db = db
        self.limiter = stats.limiter
        self._stats_endpoint = stats

    def close(self) -> None:
        """Release every database connection (what the lifespan does at shutdown)."""
        self.api.state.feed.close()
        self._stats_endpoint.close()
        self.db.dispose()

    async def aclose(self) -> None:
        """Release every database and Redis connection."""
        self.api.state.feed.close()
        await self._stats_endpoint.aclose()
        self.db.dispose()


def create_app(
    settings: Settings, db: Database | None = None, background: Sequence[BackgroundTask] = ()
) -> CallstatsApp:
    """The callstats ASGI app for these settings; `background` tasks run while it serves."""
    database = db or Database(
        settings.database_url, settings.db_pool_size, settings.counter_slots, settings.db_timeout_seconds
    )
    stats = StatsEndpoint(database, StatsRateLimiter(settings.stats_rate_limit, settings.redis_url))
    api = FastAPI(
        title="callstats",
        version=__version__,
        description="Exact, instant statistics for outbound voice-call campaigns (VoiceGenie-compatible).",
        lifespan=_lifespan(database, stats, background),
        docs_url=None,  # /docs and /redoc: install_docs serves them from the package, not from a CDN
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    api.state.db = database
    api.state.settings = settings
    install_error_handlers(api)
    for router in (health_router, campaigns_router, timeseries_router):
        api.include_router(router)
    install_streaming(api, settings, database)
    install_dashboard(api)
    install_docs(api)
    describe(api)
    return CallstatsApp(api, stats, settings, database)


def _lifespan(
    db: Database, stats: StatsEndpoint, background: Sequence[BackgroundTask]
) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        # A served process (app_from_env, the demo) is gone within its drain time of a stop signal.
        drain_seconds: float | None = getattr(api.state, "exit_deadline_seconds", None)
        undo_deadline = exit_deadline_on_signal(drain_seconds) if drain_seconds else lambda: None
        await api.state.streams.start()
        tasks = [asyncio.create_task(task(db)) for task in background]
        try:
            yield
        finally:
            await asyncio.gather(*(cancelled(task) for task in tasks))
            await api.state.streams.close()
            await stats.aclose()
            db.dispose()
            undo_deadline()

    return lifespan


def app_from_env() -> CallstatsApp:
    """Factory for `uvicorn --factory`: settings read from the environment at call time.

    The app arms the exit deadline at SIGTERM/SIGINT (CALLSTATS_DRAIN_SECONDS, callstats.serving).
    """
    settings = Settings()
    app = create_app(settings)
    app.api.state.exit_deadline_seconds = settings.drain_seconds
    return app
