"""The reference: a bare ASGI app answering every request with one fixed JSON body.

The body is read once from the file named by BENCH_RAW_BODY_FILE (the bench writes a real
getCampaignStats answer there), so both servers send the same number of bytes.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Message = MutableMapping[str, Any]

BODY = Path(os.environ["BENCH_RAW_BODY_FILE"]).read_bytes() if "BENCH_RAW_BODY_FILE" in os.environ else b"{}"
START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
}
END: Message = {"type": "http.response.body", "body": BODY}


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """Answer any HTTP request with the fixed body."""
    if scope["type"] != "http":
        return
    await send(START)
    await send(END)
