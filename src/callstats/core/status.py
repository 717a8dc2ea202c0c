"""A campaign's status from its counters and the current time. Pure.

- `not_started`: no call has started yet (a campaign with no contact is not started);
- `completed`: `completed_at` is set (every contact final, at least one contact);
- `stalled`: calls have started, contacts are still pending or in progress, and no event has changed
  a call or contact for `stall_after_minutes` (by the server's clock, `last_event_at`);
- `running`: otherwise.

docs/semantics.md ("Campaign status") gives the same rules in words.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple, get_args

CampaignStatus = Literal["not_started", "running", "stalled", "completed"]
STATUSES: Final[tuple[str, ...]] = get_args(CampaignStatus)
DEFAULT_STALL_AFTER_MINUTES: Final = 30
MAX_STALL_AFTER_MINUTES: Final = 43_200  # 30 days
MINUTE_MS: Final = 60_000


class Progress(NamedTuple):
    """What a status is computed from: the summed counters that matter (times in epoch ms)."""

    total: int
    pending: int
    in_progress: int
    first_call_at: int | None
    last_final_at: int | None
    last_event_at: int | None


def finished_at(total: int, pending: int, in_progress: int, last_final_at: int | None) -> int | None:
    """`completed_at`: when the last contact became final, once the campaign has contacts and none is
    pending or in progress (else None)."""
    if total > 0 and pending == 0 and in_progress == 0:
        return last_final_at
    return None


def campaign_status(progress: Progress, now_ms: int, stall_after_minutes: int) -> CampaignStatus:
    """The campaign's status at `now_ms` (epoch ms, the server's clock), by the rules above.

    A campaign is stalled once `now_ms - last_event_at >= stall_after_minutes` minutes; one whose calls
    started before last_event_at was kept (a database migrated to revision 0008 without events) counts
    from its first call start.
    """
    if (
        finished_at(progress.total, progress.pending, progress.in_progress, progress.last_final_at)
        is not None
    ):
        return "completed"
    if progress.first_call_at is None:
        return "not_started"
    last = progress.last_event_at if progress.last_event_at is not None else progress.first_call_at
    if now_ms - last >= stall_after_minutes * MINUTE_MS:
        return "stalled"
    return "running"
