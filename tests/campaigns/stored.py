"""What the deletion and erasure tests read straight from the database, over every table of
db/schema.py (so a table added later is covered without naming it): a campaign's rows per table,
and every text cell."""

from __future__ import annotations

from sqlalchemy import String, Text, func, select

from callstats.app import CallstatsApp
from callstats.db.schema import campaigns, metadata


def campaign_rows(app: CallstatsApp, campaign_id: str) -> dict[str, int]:
    """{table name: rows holding `campaign_id`} for every table with a campaign_id column (campaigns by
    its id)."""
    counts: dict[str, int] = {}
    with app.db.read() as conn:
        for table in metadata.sorted_tables:
            column = campaigns.c.id if table is campaigns else table.c.get("campaign_id")
            if column is not None:
                query = select(func.count()).select_from(table).where(column == campaign_id)
                counts[table.name] = int(conn.execute(query).scalar_one())
    return counts


def text_cells(app: CallstatsApp) -> list[tuple[str, str, str]]:
    """(table, column, value) of every non-null text cell of every table."""
    cells: list[tuple[str, str, str]] = []
    with app.db.read() as conn:
        for table in metadata.sorted_tables:
            for column in table.c:
                if isinstance(column.type, String | Text):
                    values = conn.execute(select(column).where(column.is_not(None))).scalars()
                    cells += [(table.name, column.name, str(value)) for value in values]
    return cells


def cells_holding(app: CallstatsApp, *needles: str) -> list[tuple[str, str, str]]:
    """The text cells in which any of `needles` occurs."""
    return [cell for cell in text_cells(app) if any(needle in cell[2] for needle in needles)]
