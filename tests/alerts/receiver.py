"""A real webhook receiver on loopback for the alerting tests: a threaded HTTP server that keeps each
request (headers, body) and answers `status`; it can be stopped (connections refused) and started
again on the same port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WAIT_SECONDS = 60.0  # the longest a test waits for deliveries before failing


@dataclass(frozen=True)
class Received:
    """One request the receiver answered 2xx."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """The server; `received` holds the requests answered 2xx, `refused` counts the others."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused = 0
        self.status = 200
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver.status
                with receiver._lock:
                    if 200 <= status < 300:
                        receiver.received.append(
                            Received({k.lower(): v for k, v in self.headers.items()}, body)
                        )
                    else:
                        receiver.refused += 1
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the socket: connections are refused until `start` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of_type(self, *types: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.json().get("type") in types or not types]


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until `condition()` holds (at most WAIT_SECONDS, then fail saying `what`)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        await asyncio.sleep(0.02)
