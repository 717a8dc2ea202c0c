"""Fixtures of the client tests: one `callstats serve` process on a fresh SQLite file per module, its
write and read keys, and Clients of it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callstats_client import Client, RetryNotice, RetryPolicy
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


@pytest.fixture(scope="module")
def served(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`callstats serve` on a fresh SQLite file, for the tests of one module."""
    folder = tmp_path_factory.mktemp("client")
    url = sqlite_copy(sqlite_template, folder)
    env = server_env(url)
    server = start_server(env, folder)
    try:
        write_key = new_key(url)
        read_key = new_key(url, "read")
        yield Served(server, url, env, write_key, read_key)
    finally:
        server.stop()


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
