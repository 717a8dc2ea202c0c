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
from callstats.alerts.dispatcher import Dispatcher as WebhookDispatcher
from callstats.alerts.routes import router as alerts_router
from callstats.calls.endpoint import PATH as EVENTS_PATH
from callstats.calls.endpoint import RecordEventsEndpoint
from callstats.calls.group import GroupCommit
from callstats.calls.schemas import EventRules
from callstats.campaigns.routes import router as campaigns_router
from callstats.carriers.endpoint import PREFIX as WEBHOOKS_PREFIX
from callstats.carriers.endpoint import ROUTE as WEBHOOKS_ROUTE
from callstats.carriers.endpoint import WebhookEndpoint
from callstats.carriers.routes import router as carriers_router
from callstats.carriers.schemas import PROVIDERS
from callstats.carriers.service import LiveConnections
from callstats.clock import Clock, now_ms
from callstats.config import Settings
from callstats.dashboard.routes import install_dashboard
from callstats.db.deps import Db
from callstats.db.engine import Database
from callstats.errors import ServiceUnavailable
from callstats.feed import cancelled
from callstats.metrics.exposition import process_ended
from callstats.metrics.instruments import Metrics
from callstats.metrics.routes import install_metrics
from callstats.openapi import describe, install_docs, operation_id
from callstats.ratelimit import StatsRateLimiter
from callstats.reports.routes import router as reports_router
from callstats.sealing import secret_box
from callstats.serving import exit_deadline_on_signal, tune_collector
from callstats.stats.routes import PATH_PREFIX, StatsEndpoint
from callstats.stats.service import StatsService
from callstats.stream.routes import install_streaming
from callstats.timeseries.routes import router as timeseries_router
from callstats.web import AsgiApp, Dispatcher, install_error_handlers

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
    """The ASGI application, with handles on what tests and the CLI need, and its one shutdown path."""

    def __init__(
        self,
        api: FastAPI,
        stats: StatsEndpoint,
        settings: Settings,
        db: Database,
        background: Sequence[BackgroundTask] = (),
    ) -> None:
        metrics: Metrics = api.state.metrics
        # One group commit for every event writer: recordCallEvents and the carriers' webhooks.
        groups = api.state.groups = GroupCommit(
            db, EventRules.from_settings(settings, api.state.clock), metrics=metrics
        )
        events = RecordEventsEndpoint(groups, api.state.feed)
        connections = api.state.connections = LiveConnections(db, api.state.secret_box)
        webhooks = WebhookEndpoint(db, groups, api.state.feed, connections, settings, metrics)
        prefixed: dict[str, tuple[AsgiApp, str]] = {WEBHOOKS_PREFIX: (webhooks, WEBHOOKS_ROUTE)}
        hot: dict[str, AsgiApp] = {EVENTS_PATH: events}
        super().__init__(api, stats, PATH_PREFIX, settings.max_body_bytes, hot, prefixed, metrics)
        self.settings = settings
        self.db = db
        self.stats_service = stats.service
        self.background = background
        # The alert webhooks' outbox, delivered by a task of every served process (alerts/dispatcher.py).
        self.webhooks = WebhookDispatcher(db, api.state.secret_box, settings, api.state.clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._undo_deadline: Callable[[], None] = lambda: None
        # A served process (app_from_env, the demo) sets it: gone within that many seconds of a stop signal.
        self.exit_deadline_seconds: float | None = None

    async def start(self) -> None:
        """What the lifespan does before serving: arm the exit deadline at a stop signal (when
        `exit_deadline_seconds` is set), start the change feed and the streams' stop hook, then the
        background tasks and the webhook dispatcher."""
        if self.exit_deadline_seconds:
            self._undo_deadline = exit_deadline_on_signal(self.exit_deadline_seconds)
        await self.api.state.feed.start()
        await self.api.state.streams.start()
        self._tasks = [asyncio.create_task(task(self.db)) for task in self.background]
        self._tasks.append(asyncio.create_task(self.webhooks.run()))

    async def aclose(self) -> None:
        """Release everything, users before what they use: the background tasks, the open streams, the
        change feed, the stats reader and limiter, the database pool, then the signal handlers.

        The lifespan's shutdown; whoever runs the app without a lifespan (tests) calls it instead.
        Calling it again does no harm.
        """
        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*(cancelled(task) for task in tasks))
        await self.api.state.streams.close()
        await self.api.state.feed.stop()
        await self.stats_service.aclose()
        self.db.dispose()
        process_ended(self.api.state.metrics)
        undo_deadline, self._undo_deadline = self._undo_deadline, lambda: None
        undo_deadline()


def create_app(
    settings: Settings,
    db: Database | None = None,
    background: Sequence[BackgroundTask] = (),
    clock: Clock = now_ms,
) -> CallstatsApp:
    """The callstats ASGI app for these settings; `background` tasks run while it serves; `clock` is the
    server's time in epoch ms for events received and campaign statuses (a test's own, or the wall clock).

    Raises MetricsSetupError when PROMETHEUS_MULTIPROC_DIR is set but unusable (metrics/instruments.py).
    """
    metrics = Metrics(settings.prometheus_multiproc_dir, PROVIDERS)
    database = db or Database(
        settings.database_url, settings.db_pool_size, settings.counter_slots, settings.db_timeout_seconds
    )
    database.report_pool(metrics)
    limiter = StatsRateLimiter(settings.stats_rate_limit, settings.redis_url, metrics)
    stats = StatsEndpoint(StatsService(database, limiter))
    api = FastAPI(
        title="callstats",
        version=__version__,
        description="Exact, instant statistics for outbound voice-call campaigns (VoiceGenie-compatible).",
        lifespan=_lifespan,
        docs_url=None,  # /docs and /redoc: install_docs serves them from the package, not from a CDN
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    api.state.db = database
    api.state.settings = settings
    api.state.clock = clock
    api.state.secret_box = secret_box(settings)  # reads no file: the SQLite key file on first need
    install_error_handlers(api)
    for router in (
        health_router,
        campaigns_router,
        timeseries_router,
        reports_router,
        carriers_router,
        alerts_router,
    ):
        api.include_router(router)
    install_metrics(api, metrics)
    install_streaming(api, settings, database, metrics)
    install_dashboard(api)
    install_docs(api)
    describe(api)
    app = api.state.app = CallstatsApp(api, stats, settings, database, background)
    return app


@asynccontextmanager
async def _lifespan(api: FastAPI) -> AsyncIterator[None]:
    app: CallstatsApp = api.state.app
    await app.start()
    try:
        yield
    finally:
        await app.aclose()


def app_from_env() -> CallstatsApp:
    """Factory for `uvicorn --factory`: settings read from the environment at call time.

    The app arms the exit deadline at SIGTERM/SIGINT (CALLSTATS_DRAIN_SECONDS, callstats.serving);
    the process's garbage collector is tuned for serving (serving.tune_collector).
    """
    settings = Settings()
    app = create_app(settings)
    app.exit_deadline_seconds = settings.drain_seconds
    tune_collector()
    return app
