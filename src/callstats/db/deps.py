"""The FastAPI dependency that hands routes the app's database."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from callstats.db.engine import Database


def get_db(request: Request) -> Database:
    """The app's database handle."""
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(get_db)]
