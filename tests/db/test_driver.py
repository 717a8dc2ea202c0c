"""db/driver.py: statements with IN lists give the same rows whatever the list's length, and on
PostgreSQL one statement text for every length (one array parameter, so one prepared statement)."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from callstats.db.driver import Statement
from callstats.db.engine import Database
from callstats.db.schema import accounts

_BY_IDS = Statement(select(accounts.c.id).where(accounts.c.id.in_(bindparam("ids", expanding=True))))


def test_an_in_list_finds_exactly_the_rows_named_at_every_length(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    try:
        names = [f"acct-{n:04d}" for n in range(700)]
        with db.engine.begin() as conn:
            conn.execute(accounts.insert(), [{"id": name, "name": name, "created_at": 0} for name in names])
        with db.engine.connect() as conn:
            for length in (1, 2, 3, 499, 700):
                wanted = [*names[:length:2], "missing"]
                found = {row[0] for row in _BY_IDS.rows(conn, {"ids": wanted})}
                assert found == set(names[:length:2])
            texts = {_BY_IDS._bound(conn.dialect, {"ids": names[:length]})[0] for length in (1, 2, 700)}
        if db.is_sqlite:
            assert len(texts) == 3  # one mark per value
        else:
            assert len(texts) == 1 and "= ANY(%(ids)s)" in texts.pop()
    finally:
        db.dispose()
