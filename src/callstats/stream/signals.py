"""Run a callback when the process is asked to stop, before the server's own handler runs.

An ASGI server waits for open responses to finish before it shuts the app down,
and a stats stream never finishes by itself: chaining SIGINT and SIGTERM lets
the streams end at once, so a Ctrl-C stops the server without a second one.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_exit_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` on the running loop at SIGINT/SIGTERM, then the previous handler; returns an undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: dict[int, tuple[Any, Any]] = {}
    for sig in EXIT_SIGNALS:
        previous = signal.getsignal(sig)
        if callable(previous):
            chained = _chain(loop, callback, previous)
            signal.signal(sig, chained)
            installed[sig] = (previous, chained)

    def undo() -> None:
        for sig, (previous, chained) in installed.items():
            if signal.getsignal(sig) is chained:  # someone else replaced it since: leave theirs
                signal.signal(sig, previous)

    return undo


def _chain(
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[], None],
    previous: Callable[[int, FrameType | None], Any],
) -> Callable[[int, FrameType | None], None]:
    def chained(signum: int, frame: FrameType | None) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(callback)
        previous(signum, frame)

    return chained
