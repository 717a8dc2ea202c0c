"""A database migrated only up to an earlier revision, for the tests of the migration after it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from callstats.config import sqlalchemy_url
from callstats.db import migrate


@contextmanager
def database_at(revision: str, database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's backend migrated to `revision` only: a new SQLite file under
    `tmp_path`, or a private PostgreSQL database on the test server (dropped afterwards); its URL."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / f'at_{revision}.db'}"
        command.upgrade(migrate.alembic_config(url), revision)
        yield url
        return
    name = f"callstats_{revision}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(sqlalchemy_url(database_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(sqlalchemy_url(database_url)).set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(migrate.alembic_config(url), revision)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
