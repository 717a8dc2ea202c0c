"""Alembic, driven from code: upgrade to head and tell whether a database is behind."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from callstats.config import sqlalchemy_url


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(files("callstats.db") / "migrations"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did: the revision before (None: no schema yet) and the one after."""

    before: str | None
    after: str

    def describe(self) -> str:
        """One sentence for the operator: created, upgraded, or already up to date."""
        if self.before is None:
            return f"Database schema created at revision {self.after}."
        if self.before == self.after:
            return f"Database schema already up to date at revision {self.after}."
        return f"Database schema upgraded from revision {self.before} to {self.after}."


def upgrade(database_url: str) -> Upgrade:
    """Create or upgrade the schema to the newest revision; the revisions before and after.

    Raises NewerSchema when the database was migrated by a newer callstats (nothing is changed).
    """
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        found = status(engine, database_url)
        if found.ahead:
            raise NewerSchema(found)
        command.upgrade(alembic_config(database_url), "head")
        with engine.connect() as conn:
            after = MigrationContext.configure(conn).get_current_revision() or ""
    finally:
        engine.dispose()
    return Upgrade(before=found.current, after=after)


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


class NewerSchema(Exception):
    """The database's schema revision is one this callstats does not know (a newer one migrated it)."""

    def __init__(self, found: SchemaStatus) -> None:
        super().__init__(f"schema revision {found.current} is newer than this callstats knows ({found.head})")
        self.status = found
