"""The seed document's example answer (docs/seed/get-campaign-stats.md), as tests compare against it."""

from __future__ import annotations

from typing import Any

SEED_FIELDS = [
    "campaign_id",
    "campaign_name",
    "total_contacts",
    "calls_completed",
    "calls_failed",
    "calls_in_progress",
    "calls_pending",
    "success_rate",
    "average_call_duration",
    "total_call_duration",
    "call_status_breakdown",
    "started_at",
    "completed_at",
]

SEED_EXAMPLE: dict[str, Any] = {
    "campaign_id": "550e8400-e29b-41d4-a716-446655440000",
    "campaign_name": "Q4 Sales Campaign",
    "total_contacts": 1000,
    "calls_completed": 750,
    "calls_failed": 150,
    "calls_in_progress": 50,
    "calls_pending": 50,
    "success_rate": 83.33,
    "average_call_duration": 245,
    "total_call_duration": 183750,
    "call_status_breakdown": {"answered": 750, "busy": 80, "no_answer": 50, "failed": 20, "voicemail": 100},
    "started_at": "2024-01-16T09:00:00Z",
    "completed_at": None,
}
