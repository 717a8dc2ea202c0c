"""The service's Prometheus instruments: one `Metrics` per app, every metric named `callstats_*`.

Each instrument is prometheus-client's own (Counter, Gauge, Histogram) in a registry of this app's.
With one process the values live in memory and /metrics shows that registry. Under several worker
processes (`callstats serve --workers N`, or any process manager that sets PROMETHEUS_MULTIPROC_DIR
before the workers start) the library writes each process's values to files in that directory and
/metrics sums them (metrics/exposition.py); the gauges below are `livesum`: the sum over the
processes alive. docs/deployment.md, Metrics, says what each one means.

The recording methods are what the request paths call: a request costs one counter increment and one
histogram observation (the series cached per label set, so no label lookup); an events request adds
its three counts once, never one call per event.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, values

# Seconds. The hot routes answer in a fraction of a millisecond, hence the low buckets.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FEED_LAG_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"  # any other method a client sends: the label's values stay bounded
UNMATCHED_ROUTE = "unmatched"  # the route label of a request no route answered (an unknown path)
NO_STATUS = "none"  # the status label of a request that ended before its answer started
EVENT_RESULTS = ("applied", "duplicate", "rejected")
CALLBACK_VERDICTS = ("applied", "duplicate", "unmatched", "ignored", "refused")
FEED_SOURCES = ("local", "remote")


class MetricsSetupError(RuntimeError):
    """The multiprocess directory is set but prometheus-client was imported before it was (or it is
    no directory): the workers' values would not be summed. One line saying what to do."""


class Metrics:
    """The app's instruments and the calls that record them.

    `multiprocess_dir` (Settings.prometheus_multiproc_dir, PROMETHEUS_MULTIPROC_DIR) is where every
    worker's values are written, None for one process; `providers` are the carrier platforms whose
    callback series start at zero. Raises MetricsSetupError for a directory the library does not use.
    """

    def __init__(self, multiprocess_dir: str | None = None, providers: Iterable[str] = ()) -> None:
        self.multiprocess_dir = multiprocess_dir
        _check_mode(multiprocess_dir)
        # No `_created` series: multiprocess mode has none, so one process shows the same metrics.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        registry = self.registry = CollectorRegistry()
        self.requests = Counter(
            "callstats_http_requests",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "callstats_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and method",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.events = Counter(
            "callstats_events",
            "Call events written (recordCallEvents and carrier callbacks), by result",
            ["result"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "callstats_rate_limited_requests",
            "getCampaignStats requests refused with 429 by the per-campaign rate limit",
            registry=registry,
        )
        self.open_streams = _live_gauge("callstats_open_streams", "Live stats streams open now", registry)
        self.feed_lag = Histogram(
            "callstats_feed_lag_seconds",
            "Change feed: time from a campaign's publish to its delivery, local (to this process's "
            "stream watchers) or remote (a signal from another process, wall clocks)",
            ["source"],
            buckets=FEED_LAG_BUCKETS,
            registry=registry,
        )
        self.pool_checked_out = _live_gauge(
            "callstats_db_pool_checked_out_connections",
            "Database connections checked out of the pool now",
            registry,
        )
        self.pool_size = _live_gauge(
            "callstats_db_pool_size_connections", "Connections the database pool keeps (its size)", registry
        )
        self.pool_max = _live_gauge(
            "callstats_db_pool_max_connections",
            "Most connections the pool hands out (size plus overflow)",
            registry,
        )
        self.callbacks = Counter(
            "callstats_carrier_callbacks",
            "Carrier webhook callbacks received, by provider and verdict (refused: bad signature)",
            ["provider", "verdict"],
            registry=registry,
        )
        self._series: dict[tuple[str | None, str, int | None], tuple[Counter, Histogram]] = {}
        self._applied, self._duplicate, self._rejected = (self.events.labels(r) for r in EVENT_RESULTS)
        self._lag = {source: self.feed_lag.labels(source) for source in FEED_SOURCES}
        for provider in providers:  # every series a dashboard shows exists from the start, at zero
            for verdict in CALLBACK_VERDICTS:
                self.callbacks.labels(provider, verdict)

    def request_done(self, route: str | None, method: str, status: int | None, seconds: float) -> None:
        """One HTTP request answered: `route` its template (None: no route matched), `status` None
        when no answer started, `seconds` from arrival to the end of the answer."""
        if method not in METHODS:
            method = OTHER_METHOD
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._new_series(route, method, status)
        series[0].inc()
        series[1].observe(seconds)

    def _new_series(self, route: str | None, method: str, status: int | None) -> tuple[Counter, Histogram]:
        shown = route if route is not None else UNMATCHED_ROUTE
        code = str(status) if status is not None else NO_STATUS
        return self.requests.labels(shown, method, code), self.request_seconds.labels(shown, method)

    def events_written(self, applied: int, duplicate: int, rejected: int) -> None:
        """One request's events once committed, counted by result (one call per request)."""
        if applied:
            self._applied.inc(applied)
        if duplicate:
            self._duplicate.inc(duplicate)
        if rejected:
            self._rejected.inc(rejected)

    def feed_delivered(self, source: str, seconds: float) -> None:
        """A change signal delivered `seconds` after its publish (`local` or `remote`; never below 0)."""
        self._lag[source].observe(max(seconds, 0.0))

    def callback_received(self, provider: str, verdict: str) -> None:
        """One carrier callback answered with `verdict` (`refused`: its signature did not hold)."""
        self.callbacks.labels(provider, verdict).inc()

    def pool_configured(self, size: int, most: int) -> None:
        """This process's database pool: `size` connections kept, `most` handed out at a time."""
        self.pool_size.set(size)
        self.pool_max.set(most)


def _live_gauge(name: str, documentation: str, registry: CollectorRegistry) -> Gauge:
    """A gauge summed over the live processes in multiprocess mode (a dead worker's value drops out)."""
    return Gauge(name, documentation, multiprocess_mode="livesum", registry=registry)


def _check_mode(multiprocess_dir: str | None) -> None:
    """The library writes to the directory only if PROMETHEUS_MULTIPROC_DIR was set when it was
    imported (prometheus_client.values chooses its value class then)."""
    if multiprocess_dir is None:
        return
    if not getattr(values.ValueClass, "_multiprocess", False):
        raise MetricsSetupError(
            "PROMETHEUS_MULTIPROC_DIR is set but prometheus-client was imported before it: set it in the "
            "environment of the worker processes before they start (callstats serve --workers does)"
        )
    if not os.path.isdir(multiprocess_dir):
        raise MetricsSetupError(f"PROMETHEUS_MULTIPROC_DIR={multiprocess_dir!r} is not a directory")
