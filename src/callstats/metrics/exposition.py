"""The text /metrics answers, for one process or summed over every worker process.

In multiprocess mode (Metrics.multiprocess_dir set) each process writes its values to files there,
named by its pid; prometheus-client's MultiProcessCollector reads and sums them all: counters and
histograms over every process that ever ran (a stopped worker's requests still count), the `livesum`
gauges over the processes alive. A worker that stops cleanly removes its gauge files (`process_ended`,
the app's shutdown); the files of one that was killed are removed at the next scrape, once its pid
is gone (`_forget_dead`). `callstats serve` makes the directory afresh for each run and removes it at
the end, so nothing of an earlier run is ever summed.
"""

from __future__ import annotations

import glob
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from callstats.metrics.instruments import Metrics

CONTENT_TYPE = CONTENT_TYPE_LATEST  # text/plain with the text format's version, as the library writes it


def exposition(metrics: Metrics) -> bytes:
    """Every metric in the Prometheus text format: this process's, or every worker's summed."""
    directory = metrics.multiprocess_dir
    if directory is None:
        return bytes(generate_latest(metrics.registry))
    _forget_dead(directory)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))


def process_ended(metrics: Metrics) -> None:
    """This process stops: its live gauges (streams, pool) leave the sums; its counters stay."""
    if metrics.multiprocess_dir is not None:
        mark_process_dead(os.getpid(), metrics.multiprocess_dir)  # type: ignore[no-untyped-call]


def _forget_dead(directory: str) -> None:
    """Remove the live gauges of processes that ended without saying so (killed, crashed)."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = os.path.basename(path).removesuffix(".db").rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
