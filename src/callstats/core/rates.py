"""The rounding of every ratio callstats shows: exact decimals, half-up (12.345 -> 12.35), no float
arithmetic. Pure; stats/response.py (getCampaignStats) and core/alerts.py (alert rules) both use it, so
a rule on `success_rate` compares the figure the stats show.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def round_half_up(value: Decimal, places: int) -> Decimal:
    """`value` rounded half-up (away from zero on a tie) to `places` decimals."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def percent(part: int, whole: int) -> float | None:
    """100 * part / whole, half-up to 2 decimals; None when `whole` is 0 (no ratio yet)."""
    if whole == 0:
        return None
    return float(round_half_up(Decimal(100 * part) / Decimal(whole), 2))
