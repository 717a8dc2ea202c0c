"""Fixtures of the reliability suite: private servers, a campaign to ingest into, a line for the figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from callstats.accounts.service import create_key
from callstats.db import migrate
from callstats.db.engine import Database
from tests.oracle import phone_of
from tests.reliability.ingest import RULES
from tests.reliability.servers import PrivatePostgres, PrivateRedis, private_postgres_unavailable
from tests.tools import skip_missing_tool

Say = Callable[[str], None]


@pytest.fixture
def say(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Say:
    """Print a line of figures in the test output, past pytest's capture (shown with -q too)."""

    def line(text: str) -> None:
        with capsys.disabled():
            print(f"\n[{request.node.name}] {text}")

    return line


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster this module may freeze and stop (never the shared one), migrated."""
    why = private_postgres_unavailable()
    if why is not None:
        skip_missing_tool("postgresql", f"cannot start a private PostgreSQL cluster: {why}")
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        migrate.upgrade(cluster.url)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server this test may stop (never the shared one)."""
    import shutil

    if shutil.which("redis-server") is None:
        skip_missing_tool("redis-server", "a private Redis the test may stop")
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


def issue_key(database_url: str) -> str:
    """A write key of account 'acme' (also allowed to read)."""
    db = Database(database_url, pool_size=1)
    try:
        return create_key(db, "acme", "write").plaintext
    finally:
        db.dispose()


def new_campaign(base_url: str, key: str, contacts: int) -> tuple[str, list[str]]:
    """A campaign with `contacts` contacts, made through the API: its id and their phones."""
    headers = {"x-api-key": key}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        created = http.post(
            "/createCampaign",
            json={
                "name": "reliability",
                "max_attempts": RULES.max_attempts,
                "retry_on": sorted(RULES.retry_on),
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        campaign_id: str = created.json()["data"]["campaign_id"]
        phones = [phone_of(n) for n in range(contacts)]
        added = http.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=headers
        )
        assert added.status_code == 200 and added.json()["data"]["accepted"] == contacts, added.text
    return campaign_id, phones
