"""Alembic, driven from code: upgrade to head and tell whether a database is behind."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from callstats.config import sqlalchemy_url


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(files("callstats.db") / "migrations"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Create or upgrade the schema to the newest revision."""
    command.upgrade(alembic_config(database_url), "head")


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against the code's migrations."""

    current: str | None
    head: str

    known: frozenset[str] = frozenset()

    @property
    def up_to_date(self) -> bool:
        """Whether the database is at the newest revision."""
        return self.current == self.head

    @property
    def ahead(self) -> bool:
        """Whether the database was migrated by a newer callstats than this one."""
        return self.current is not None and self.current not in self.known


def status(engine: Engine, database_url: str) -> SchemaStatus:
    """The database's revision and the newest one."""
    scripts = ScriptDirectory.from_config(alembic_config(database_url))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    known = frozenset(rev.revision for rev in scripts.walk_revisions())
    return SchemaStatus(current=current, head=scripts.get_current_head() or "", known=known)
