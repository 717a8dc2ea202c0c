"""Alembic environment: runs the migrations on the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from callstats.db.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""
engine = create_engine(url, poolclass=NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two `callstats migrate` at once (a rolling deploy): the second waits, then finds nothing to do.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7412202611)")
        context.run_migrations()
engine.dispose()
