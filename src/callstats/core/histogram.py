"""Fixed talk-time buckets and the percentiles read from them. Pure.

Bucket i holds durations d with EDGES[i-1] < d <= EDGES[i] (bucket 0 holds d = 0).
Edges grow by at most 5% (EDGES[i+1] <= 1.05 * (EDGES[i] + 1)), so a percentile
reported as its bucket's upper edge is never below the exact nearest-rank
percentile and at most 5% above it; below 20 s every second has its own bucket
and the answer is exact.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Final

MAX_SECONDS: Final = 7 * 86_400
ERROR_BOUND: Final = 0.05


def _edges() -> tuple[int, ...]:
    edges = [0]
    while edges[-1] < MAX_SECONDS:
        edges.append(max(edges[-1] + 1, math.floor((1 + ERROR_BOUND) * (edges[-1] + 1))))
    return tuple(edges)


EDGES: Final = _edges()


def talk_bucket(seconds: int) -> int:
    """The index of the bucket holding a talk time."""
    return bisect.bisect_left(EDGES, min(max(seconds, 0), MAX_SECONDS))


def percentile(counts: Mapping[int, int], p: float) -> int:
    """Nearest-rank percentile `p` (0-100] from bucket counts, as its bucket's upper edge; 0 when empty."""
    total = sum(counts.values())
    if total == 0:
        return 0
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return EDGES[bucket]
    return EDGES[max(counts)]
