"""Fixtures of the alerting tests: an app that may send to loopback, retries quickly, and runs its
webhook dispatcher (the lifespan's start), and a real HTTP receiver on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from callstats.app import CallstatsApp
from callstats.config import Settings
from tests.alerts.receiver import Receiver


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The test database; loopback URLs allowed; a due message found within 20 ms, retried after
    about 50 ms, 100 ms, ...; a key to seal the endpoints' secrets with (PostgreSQL has no key file)."""
    return Settings(
        database_url=database_url,
        redis_url=None,
        counter_slots=4,
        webhook_allow_private=True,
        webhook_poll_seconds=0.02,
        webhook_retry_base_seconds=0.05,
        alert_timer_seconds=0.05,
        secret_key=SecretStr(Fernet.generate_key().decode()),
    )


@pytest.fixture
async def started(app: CallstatsApp) -> AsyncIterator[CallstatsApp]:
    """The app with its lifespan's start done: the dispatcher delivers (the `app` fixture closes it)."""
    await app.start()
    yield app


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that keeps every request it answers."""
    server = Receiver()
    server.start()
    yield server
    server.stop()
