"""The one list of call outcomes and event types. Pure."""

from __future__ import annotations

from typing import Final

OUTCOMES: Final = ("answered", "busy", "no_answer", "failed", "voicemail")
"""Every way a call can end, in the seed's call_status_breakdown order."""

EVENT_TYPES: Final = ("call.started", "call.answered", "call.ended")
"""The events recordCallEvents accepts."""
