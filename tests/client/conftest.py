"""Fixtures of the client tests: one `callstats serve` process per module and backend (a fresh SQLite
file; PostgreSQL with Redis when CALLSTATS_TEST_DATABASE_URL is set), its write and read keys, and
Clients of it."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from callstats_client import Client, RetryNotice, RetryPolicy
from tests.conftest import BACKENDS, REDIS_URL
from tests.servers import ServerProcess, server_env, start_server
from tests.stream.helpers import new_key

# Short waits so that the retry tests stay fast; the bounds are the client's defaults.
FAST = RetryPolicy(backoff=0.05, max_backoff=0.5)


@dataclass
class Served:
    """A running server, its database, and keys of one account (write and read) and of another."""

    server: ServerProcess
    database_url: str
    env: dict[str, str]
    write_key: str
    read_key: str

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:port"""
        return self.server.base_url


def sqlite_copy(template: Path, folder: Path) -> str:
    """A fresh migrated SQLite database in `folder` (a copy of the session's template): its URL."""
    path = folder / "callstats.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


@contextlib.contextmanager
def serving(url: str, folder: Path, redis_url: str | None = None) -> Iterator[Served]:
    """`callstats serve` on `url` (with a sealing key, so carrier connections work on PostgreSQL too)
    and keys of a new account, stopped on the way out."""
    env = server_env(url, redis_url, secret_key=Fernet.generate_key().decode())
    server = start_server(env, folder)
    try:
        yield Served(server, url, env, new_key(url), new_key(url, "read"))
    finally:
        server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server for the tests of one module: on a fresh SQLite file, or on the run's PostgreSQL
    database with Redis (each module's keys are a new account's, so nothing else is seen)."""
    folder = tmp_path_factory.mktemp("client")
    if request.param == "sqlite":
        with serving(sqlite_copy(sqlite_template, folder), folder) as running:
            yield running
        return
    with serving(request.getfixturevalue("pg_migrated"), folder, REDIS_URL) as running:
        yield running


@pytest.fixture(scope="module")
def sqlite_served(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server on a fresh SQLite file (for tests whose subject is not the backend)."""
    folder = tmp_path_factory.mktemp("client-sqlite")
    with serving(sqlite_copy(sqlite_template, folder), folder) as running:
        yield running


@pytest.fixture
def api(served: Served) -> Iterator[Client]:
    """A Client with the write key."""
    with Client(served.base_url, served.write_key, retry=FAST) as client:
        yield client


class Retries:
    """An on_retry hook that keeps every notice."""

    def __init__(self) -> None:
        self.notices: list[RetryNotice] = []

    def __call__(self, notice: RetryNotice) -> None:
        self.notices.append(notice)
