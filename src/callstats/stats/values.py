"""A campaign's counter values, as the counter readers return them. Pure.

stats/counters.py reads and writes them (SQL); the stats response and the
reconciliation only take them as values, so they need no database layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from callstats.calls.lifecycle import OUTCOMES


@dataclass(frozen=True)
class Counters:
    """A campaign's numbers, summed over its counter slots."""

    campaign_id: str
    campaign_name: str
    total: int = 0
    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    talk_seconds: int = 0
    breakdown: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    first_call_at: int | None = None
    last_final_at: int | None = None
