"""Migration 0010: the alerting tables exist after an upgrade, match db/schema.py, and go on downgrade."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from callstats.db import migrate
from callstats.db.schema import metadata

ALERT_TABLES = {"webhook_endpoints", "alert_rules", "alert_states", "webhook_outbox", "webhook_attempts"}


def test_upgrade_creates_the_alert_tables_as_the_schema_declares_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= ALERT_TABLES
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert [d for d in differences if any(table in repr(d) for table in ALERT_TABLES)] == []


def test_downgrade_to_0009_drops_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    migrate.upgrade(url)
    command.downgrade(migrate.alembic_config(url), "0009")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert not ALERT_TABLES & set(inspect(conn).get_table_names())
    engine.dispose()
