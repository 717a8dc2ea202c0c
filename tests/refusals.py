"""A database that refuses one value: a trigger a test installs on its own test database.

It makes the database raise a genuine error (SQLite `RAISE(ABORT)`, PostgreSQL `RAISE EXCEPTION`)
for rows whose column holds that value, and for nothing else: the real failure a value the
validation let through would cause, without a mock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from callstats.config import is_sqlite, sqlalchemy_url

TRIGGER = "callstats_test_refusal"


@contextlib.contextmanager
def refusing(database_url: str, table: str, column: str, value: str) -> Iterator[None]:
    """While inside, an INSERT into `table` whose `column` equals `value` fails in the database.

    `table`, `column` and `value` are the test's own constants (written into the DDL, quotes doubled).
    """
    literal = "'" + value.replace("'", "''") + "'"
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    if is_sqlite(database_url):
        create = [
            f"CREATE TRIGGER {TRIGGER} BEFORE INSERT ON {table} WHEN NEW.{column} = {literal} "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
        drop = [f"DROP TRIGGER IF EXISTS {TRIGGER}"]
    else:
        create = [
            f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.{column} = {literal} THEN RAISE EXCEPTION 'refused by the test'; END IF; "
            "RETURN NEW; END $$",
            f"CREATE TRIGGER {TRIGGER} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()",
        ]
        drop = [f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}", f"DROP FUNCTION IF EXISTS {TRIGGER}()"]
    try:
        with engine.begin() as conn:
            for statement in drop + create:
                conn.execute(text(statement))
        yield
    finally:
        with engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))
        engine.dispose()
