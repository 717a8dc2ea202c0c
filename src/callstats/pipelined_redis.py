"""One Redis connection shared by all concurrent callers: what one event-loop turn asks goes out in one write.

redis-py gives each concurrent call its own pooled connection, a write, a read and a timeout of its
own; on the stats hot path that cost three times a whole raw HTTP request. Here calls are queued,
written together once per loop turn and answered in order (Redis answers a connection in order).
Every call still gets an answer or an error within the socket timeout: a hung Redis fails them all
and drops the connection, and the next call opens a new one.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis.connection import parse_url

DEFAULT_TIMEOUT_S = 0.25
_url_options = cast(Callable[[str], dict[str, Any]], parse_url)


def _packed(*parts: bytes | str | int) -> bytes:
    """One command in Redis' wire format."""
    return cast(bytes, hiredis.pack_command(cast(Any, parts)))


class RedisUnavailable(ConnectionError):
    """Redis could not be reached, or did not answer within the timeout."""


class _Replies(asyncio.Protocol):
    """The connection's protocol: queued commands out, replies matched to callers in order."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.outgoing: list[bytes] = []
        self.waiting: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Queue one packed command; its reply (or error) arrives on the returned future."""
        if self.closed:
            raise RedisUnavailable("Redis connection closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.append(command)
        self.waiting.append((loop.time() + self.timeout, future))
        if self.timer is None:
            self.timer = loop.call_at(self.waiting[0][0], self._check_deadline)
        return future

    def _flush(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                _, future = self.waiting.popleft()
                if not future.done():
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:
            self._fail(RedisUnavailable(f"unreadable Redis reply: {exc}"))

    def _check_deadline(self) -> None:
        self.timer = None
        if not self.waiting:
            return
        loop = asyncio.get_running_loop()
        deadline = self.waiting[0][0]
        if loop.time() >= deadline:
            self._fail(RedisUnavailable("Redis did not answer within the timeout"))
        else:
            self.timer = loop.call_at(deadline, self._check_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisUnavailable("Redis connection lost"))

    def _fail(self, error: Exception) -> None:
        if not self.closed and self.transport is not None:
            self.transport.abort()
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.waiting:
            _, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


class PipelinedScript:
    """A Lua script run with EVALSHA over one pipelined connection (EVAL when Redis does not know it yet)."""

    def __init__(self, redis_url: str, script: str) -> None:
        self.options = _url_options(redis_url)
        self.timeout = float(self.options.get("socket_timeout") or DEFAULT_TIMEOUT_S)
        self.connect_timeout = float(self.options.get("socket_connect_timeout") or DEFAULT_TIMEOUT_S)
        self.tls = redis_url.startswith("rediss:")
        self.script = script.encode()
        self.sha = hashlib.sha1(self.script).hexdigest().encode()
        self._protocol: _Replies | None = None
        self._opening: asyncio.Future[_Replies] | None = None

    async def __call__(self, keys: tuple[str, ...], args: tuple[int | str, ...]) -> Any:
        """The script's reply; RedisUnavailable or hiredis.ReplyError when there is none."""
        protocol = await self._connection()
        reply = await protocol.send(_packed(b"EVALSHA", self.sha, len(keys), *keys, *args))
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = await protocol.send(_packed(b"EVAL", self.script, len(keys), *keys, *args))
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    async def _connection(self) -> _Replies:
        if self._protocol is not None and not self._protocol.closed:
            return self._protocol
        if self._opening is None:  # one connection attempt, however many callers wait for it
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    def _opened(self, opening: asyncio.Future[_Replies]) -> None:
        self._opening = None
        if not opening.cancelled() and opening.exception() is None:
            self._protocol = opening.result()

    async def _open(self) -> _Replies:
        loop = asyncio.get_running_loop()
        try:
            if "path" in self.options:
                connecting = loop.create_unix_connection(lambda: _Replies(self.timeout), self.options["path"])
            else:
                host, port = self.options.get("host", "localhost"), int(self.options.get("port", 6379))
                context = ssl.create_default_context() if self.tls else None
                connecting = loop.create_connection(lambda: _Replies(self.timeout), host, port, ssl=context)
            _, protocol = await asyncio.wait_for(connecting, self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise RedisUnavailable(f"cannot connect to Redis: {type(exc).__name__}") from exc
        for command in self._handshake():
            reply = await protocol.send(_packed(*command))
            if isinstance(reply, hiredis.ReplyError):
                protocol._fail(RedisUnavailable("Redis refused the connection's setup"))
                raise reply
        return protocol

    def _handshake(self) -> list[tuple[bytes | str | int, ...]]:
        commands: list[tuple[bytes | str | int, ...]] = []
        if self.options.get("password") is not None:
            user = self.options.get("username")
            commands.append(
                (b"AUTH", user, self.options["password"]) if user else (b"AUTH", self.options["password"])
            )
        if int(self.options.get("db") or 0):
            commands.append((b"SELECT", int(self.options["db"])))
        return commands

    def close(self) -> None:
        """Drop the connection; calls waiting on it fail."""
        if self._protocol is not None:
            self._protocol._fail(RedisUnavailable("closed"))
            self._protocol = None
