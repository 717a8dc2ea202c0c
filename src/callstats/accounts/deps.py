"""FastAPI dependencies for authenticated routes: ReadKey and WriteKey."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader

from callstats.accounts.keys import HEADER, presented
from callstats.accounts.service import ApiKey, authenticate
from callstats.db.deps import Db

# OpenAPI's `x-api-key` security scheme (Swagger UI's Authorize button); a missing header is None here,
# and authenticate's 401 in the envelope, not the framework's own error.
API_KEY = APIKeyHeader(
    name=HEADER.decode(),
    scheme_name="x-api-key",
    auto_error=False,
    description="An API key (`callstats keys create`)",
)


def read_key(db: Db, x_api_key: Annotated[str | None, Security(API_KEY)] = None) -> ApiKey:
    """Any valid key (optional whitespace around the header's value trimmed)."""
    return authenticate(db, presented(x_api_key))


def write_key(key: Annotated[ApiKey, Depends(read_key)]) -> ApiKey:
    """A valid key with the write scope."""
    key.require_write()
    return key


ReadKey = Annotated[ApiKey, Depends(read_key)]
WriteKey = Annotated[ApiKey, Depends(write_key)]
