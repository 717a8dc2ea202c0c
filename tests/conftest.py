"""Fixtures: the app on a fresh real database per test (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.pool import NullPool

from callstats.accounts.service import create_key
from callstats.app import CallstatsApp, create_app
from callstats.config import Settings, sqlalchemy_url
from callstats.db import migrate
from callstats.db.schema import contacts, metadata
from tests.tools import tool_of

PG_URL = os.environ.get("CALLSTATS_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("CALLSTATS_TEST_REDIS_URL")
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="no CALLSTATS_TEST_DATABASE_URL")),
]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated once, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> Iterator[str]:
    """A private PostgreSQL database for this test run (so parallel runs never collide), migrated once."""
    assert PG_URL
    server = make_url(sqlalchemy_url(PG_URL))
    name = f"{server.database}_callstats_{os.getpid()}"
    admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(url: str) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    with engine.begin() as conn:
        names = ", ".join(table.name for table in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated, empty database for one test."""
    if request.param == "sqlite":
        path = tmp_path / "callstats.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_migrated")
    _truncate(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for a test app on the test database."""
    return Settings(database_url=database_url, redis_url=None, counter_slots=4)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[CallstatsApp]:
    """The app under test."""
    application = create_app(settings)
    yield application
    await application.aclose()


@pytest.fixture
async def client(app: CallstatsApp) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client talking to the app."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://callstats.test"
    ) as http:
        yield http


@pytest.fixture
def make_key(app: CallstatsApp) -> Callable[..., str]:
    """Issue a key: make_key(account="acme", scope="write") -> plaintext."""

    def issue(account: str = "acme", scope: str = "write") -> str:
        return create_key(app.db, account, scope).plaintext

    return issue


@pytest.fixture
def write_key(make_key: Callable[..., str]) -> str:
    """A write key of account 'acme'."""
    return make_key()


@pytest.fixture
def auth(write_key: str) -> dict[str, str]:
    """Headers carrying acme's write key."""
    return {"x-api-key": write_key}


async def new_campaign(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> str:
    """Create a campaign through the API; its id."""
    response = await client.post("/createCampaign", json={"name": "Test campaign", **body}, headers=auth)
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["data"]["campaign_id"]
    return campaign_id


def stored_contacts(app: CallstatsApp, campaign_id: str) -> dict[str, tuple[Any, Any]]:
    """The campaign's contacts as {phone identity: (name, metadata)}, read from the database itself."""
    query = select(contacts.c.phone, contacts.c.name, contacts.c.metadata).where(
        contacts.c.campaign_id == campaign_id
    )
    with app.db.read() as conn:
        rows = conn.execute(query).all()
    return {phone: (name, json.loads(meta) if meta else None) for phone, name, meta in rows}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line naming each missing system tool and how many tests skipped for it (tests/tools.py)."""
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        tool = tool_of(str(reason))
        if tool is not None:
            counts[tool] = counts.get(tool, 0) + 1
    if not counts:
        return
    parts = [f"{tool} ({n} test{'s' if n != 1 else ''})" for tool, n in sorted(counts.items())]
    terminalreporter.write_sep("-", "missing tools")
    terminalreporter.write_line(
        f"skipped for a missing tool: {', '.join(parts)}; `make system-deps` installs them"
    )
