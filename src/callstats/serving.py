"""What `serve` and `demo` share around uvicorn: the listening socket and the stop deadline.

Both bind their socket before anything starts, so a taken port or an unknown host ends the
command with one line naming the address, before any database file is touched or any worker
started. Once the server runs, SIGTERM or SIGINT arms a deadline: if the process is still there
`drain_seconds` later (a connection, a thread or a library that did not let go), it exits anyway,
with one log line and exit code 1.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import socket
import threading
from collections.abc import Callable

from callstats.stream.signals import on_exit_signal

log = logging.getLogger("callstats")
CLOSE_SECONDS = 3.0  # of the drain time, what closing the database, Redis and the feed may take
EXIT_STALLED = 1
# Net new container objects before a first-generation collection (CPython's default is 700): above a
# 1,000-event request's working set, so its short-lived objects die by reference count instead.
FIRST_GENERATION_THRESHOLD = 10_000


class ListenFailed(Exception):
    """The address cannot be listened on; `str()` is one line naming it and the reason."""


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host and port (0 picks a free port), not yet listening.

    Raises ListenFailed (one line naming host:port) for a taken port, an address this host does
    not have, or a host name that does not resolve.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ListenFailed(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as exc:
        listener.close()
        raise ListenFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    listener.set_inheritable(True)  # worker processes serve on it
    return listener


def tune_collector() -> None:
    """For a served process, once its app is built: keep the cyclic garbage collector off the hot path.

    `gc.freeze()` moves every object alive now (modules, the app, its schemas) to the permanent
    generation, so a full collection no longer walks them; the first generation's threshold is
    raised to FIRST_GENERATION_THRESHOLD, so a request's short-lived objects (a thousand events'
    models and rows) are not promoted by a collection in mid-request only to fill the old
    generations. Measured with recordCallEvents by phone (docs/performance.md, issue 10): the
    collector took 13 % of the write path's time with CPython's defaults. The CPython docs
    recommend `gc.freeze()` for this (https://docs.python.org/3/library/gc.html#gc.freeze).
    """
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION_THRESHOLD, second, third)


def graceful_seconds(drain_seconds: float) -> int:
    """Whole seconds open requests may take to finish after a stop signal (uvicorn's
    timeout_graceful_shutdown): the drain time less the closing time, at least 1."""
    return max(1, math.floor(drain_seconds - CLOSE_SECONDS))


def exit_deadline_on_signal(drain_seconds: float) -> Callable[[], None]:
    """At SIGTERM or SIGINT (chained before the server's own handler), arm the exit deadline.

    Only in the main thread (elsewhere nothing is installed). Returns an undo for the handlers;
    a deadline once armed stays armed.
    """
    return on_exit_signal(lambda: arm_exit_deadline(drain_seconds))


_armed = threading.Event()


def arm_exit_deadline(seconds: float) -> None:
    """End the process `seconds` from now if it is still running then (once; later calls do nothing)."""
    if _armed.is_set():
        return
    _armed.set()
    timer = threading.Timer(seconds, _exit_stalled, args=(seconds,))
    timer.name = "callstats-exit-deadline"
    timer.daemon = True
    timer.start()


def _exit_stalled(seconds: float) -> None:
    log.error(
        "the server did not stop within %g s of the stop signal (CALLSTATS_DRAIN_SECONDS): exiting", seconds
    )
    for handler in logging.getLogger().handlers + log.handlers:
        handler.flush()
    os._exit(EXIT_STALLED)
