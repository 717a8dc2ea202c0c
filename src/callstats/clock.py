"""Wall-clock time in the unit the schema stores (epoch milliseconds)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
