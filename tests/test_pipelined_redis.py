"""The pipelined script connection: answers matched to callers, timeouts, reconnection, NOSCRIPT."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import hiredis
import pytest
import redis

from callstats.pipelined_redis import PipelinedScript, RedisUnavailable
from tests.conftest import REDIS_URL

NEEDS_REDIS = pytest.mark.skipif(not REDIS_URL, reason="no CALLSTATS_TEST_REDIS_URL")
ECHO = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"


async def _silent_server() -> tuple[asyncio.Server, int]:
    """A TCP server that accepts and reads but never answers (a hung Redis)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """The port of a hung Redis."""
    server, port = await _silent_server()
    async with server:
        yield port


@NEEDS_REDIS
async def test_concurrent_calls_each_get_their_own_answer() -> None:
    """Many calls in one loop turn share one write; each caller gets the reply to its own command."""
    assert REDIS_URL
    script = PipelinedScript(REDIS_URL, ECHO)
    keys = [f"callstats:test:{uuid.uuid4()}" for _ in range(50)]
    try:
        replies = await asyncio.gather(*(script((key,), (n,)) for n, key in enumerate(keys)))
        assert replies == [[key.encode(), str(n).encode(), 1] for n, key in enumerate(keys)]
        assert await script((keys[0],), ("again",)) == [keys[0].encode(), b"again", 2]
    finally:
        script.close()
        redis.Redis.from_url(REDIS_URL).delete(*keys)


@NEEDS_REDIS
async def test_unknown_script_is_sent_whole_once() -> None:
    """After SCRIPT FLUSH (a restarted Redis), EVALSHA's NOSCRIPT is answered by one EVAL."""
    assert REDIS_URL
    script = PipelinedScript(REDIS_URL, ECHO + " -- " + uuid.uuid4().hex)
    key = f"callstats:test:{uuid.uuid4()}"
    try:
        assert (await script((key,), ("a",)))[2] == 1
        redis.Redis.from_url(REDIS_URL).script_flush()
        assert (await script((key,), ("b",)))[2] == 2
    finally:
        script.close()
        redis.Redis.from_url(REDIS_URL).delete(key)


@NEEDS_REDIS
async def test_script_errors_are_raised() -> None:
    """An error reply from the script reaches the caller as an exception, and the connection goes on."""
    assert REDIS_URL
    broken = PipelinedScript(REDIS_URL, "return redis.call('NO_SUCH_COMMAND')")
    try:
        with pytest.raises(hiredis.ReplyError):
            await broken((), ())
    finally:
        broken.close()


async def test_hung_redis_fails_every_waiting_call_within_the_timeout(silent_port: int) -> None:
    """No answer within socket_timeout: every waiting call fails, none waits longer."""
    script = PipelinedScript(f"redis://127.0.0.1:{silent_port}/0?socket_timeout=0.2", ECHO)
    started = time.monotonic()
    results = await asyncio.gather(*(script(("k",), (n,)) for n in range(5)), return_exceptions=True)
    assert all(isinstance(r, RedisUnavailable) for r in results), results
    assert time.monotonic() - started < 1.0
    script.close()


async def test_unreachable_redis_is_an_error_not_a_hang() -> None:
    """Nobody listening: the call fails at once with RedisUnavailable."""
    server, port = await _silent_server()
    server.close()
    await server.wait_closed()
    script = PipelinedScript(f"redis://127.0.0.1:{port}/0", ECHO)
    with pytest.raises(RedisUnavailable):
        await script(("k",), (1,))


@NEEDS_REDIS
async def test_reconnects_after_the_connection_is_lost() -> None:
    """When Redis drops the connection, waiting calls fail and the next call opens a new one."""
    assert REDIS_URL
    script = PipelinedScript(REDIS_URL, ECHO)
    key = f"callstats:test:{uuid.uuid4()}"
    try:
        assert (await script((key,), (1,)))[2] == 1
        assert script._protocol is not None and script._protocol.transport is not None
        host, port = script._protocol.transport.get_extra_info("sockname")[:2]
        redis.Redis.from_url(REDIS_URL).client_kill(f"{host}:{port}")
        counts = []
        for _ in range(50):  # the loss is noticed once the close reaches us
            try:
                counts.append((await script((key,), (1,)))[2])
            except RedisUnavailable:
                await asyncio.sleep(0.01)
                continue
            if script._protocol.transport.get_extra_info("sockname")[1] != port:
                break
        assert counts[-1] >= 2
        assert script._protocol.transport.get_extra_info("sockname")[1] != port
    finally:
        script.close()
        redis.Redis.from_url(REDIS_URL).delete(key)
