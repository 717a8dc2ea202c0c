"""A TCP proxy on loopback in front of a real server that can drop a connection after the server has
answered a chosen request, before the answer reaches the client: the lost acknowledgement a client
must survive without counting twice."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from tests.servers import HOST


class DroppingProxy:
    """Forwards every connection to `target_port`; the `drop`-th request (1-based) whose first bytes
    start with `marker` gets its answer swallowed and both sockets closed."""

    def __init__(self, target_port: int, marker: bytes, drop: int) -> None:
        self.target_port = target_port
        self.marker = marker
        self.drop = drop
        self.seen = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server((HOST, 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        """The proxy's URL."""
        return f"http://{HOST}:{self.port}"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.create_connection((HOST, self.target_port))
                doomed = threading.Event()
                threading.Thread(target=self._up, args=(client, upstream, doomed), daemon=True).start()
                threading.Thread(target=self._down, args=(upstream, client, doomed), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, doomed: threading.Event) -> None:
        """Client to server; marks the connection when the chosen request goes through."""
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                if chunk.startswith(self.marker):
                    with self.lock:
                        self.seen += 1
                        if self.seen == self.drop:
                            doomed.set()
                upstream.sendall(chunk)
        _close(client, upstream)

    def _down(self, upstream: socket.socket, client: socket.socket, doomed: threading.Event) -> None:
        """Server to client; the doomed request's answer is read, then both sockets are closed."""
        with contextlib.suppress(OSError):
            while chunk := upstream.recv(65536):
                if doomed.is_set():
                    with self.lock:
                        self.dropped += 1
                    break
                client.sendall(chunk)
        _close(client, upstream)

    def close(self) -> None:
        """Stop accepting (open connections end with their peers)."""
        self.listener.close()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@contextlib.contextmanager
def dropping_proxy(target_port: int, marker: bytes, drop: int) -> Iterator[DroppingProxy]:
    """A DroppingProxy, closed on the way out."""
    proxy = DroppingProxy(target_port, marker, drop)
    try:
        yield proxy
    finally:
        proxy.close()
