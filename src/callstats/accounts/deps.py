"""FastAPI dependencies for authenticated routes: ReadKey and WriteKey."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from callstats.accounts.keys import presented
from callstats.accounts.service import ApiKey, authenticate
from callstats.db.deps import Db


def read_key(db: Db, x_api_key: Annotated[str | None, Header()] = None) -> ApiKey:
    """Any valid key (optional whitespace around the header's value trimmed)."""
    return authenticate(db, presented(x_api_key))


def write_key(key: Annotated[ApiKey, Depends(read_key)]) -> ApiKey:
    """A valid key with the write scope."""
    key.require_write()
    return key


ReadKey = Annotated[ApiKey, Depends(read_key)]
WriteKey = Annotated[ApiKey, Depends(write_key)]
