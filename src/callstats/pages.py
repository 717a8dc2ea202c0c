"""Keyset pagination, one way for every list route: an opaque cursor naming the last row shown, by its
sort position (an epoch-ms time) and its id, and the `pagination` object of a page's answer.

A cursor is urlsafe base64 (no padding) of the JSON `[position, id]`; a route sorts newest first on
(position, id) and asks for the rows after it (getContacts sorts oldest first by the contact id alone,
its position, with an empty id). Cursors given out by earlier releases stay valid.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BaseModel

from callstats.errors import ValidationFailed

PageSize = Annotated[int, Ge(1), Le(200)]
"""A page's `limit`: 1 to 200 rows."""

RowPageSize = Annotated[int, Ge(1), Le(1000)]
"""A drill-down page's `limit` (getContacts, getCalls): 1 to 1,000 rows of one campaign."""


class Pagination(BaseModel):
    """Where the next page starts (`next_cursor` is null on the last page)."""

    next_cursor: str | None
    limit: int


def encode_cursor(position: int, row_id: str) -> str:
    """The opaque cursor of the page after the row at (`position`, `row_id`)."""
    return base64.urlsafe_b64encode(json.dumps([position, row_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (position, id) a cursor stands for; ValidationFailed (400) for one this API did not give."""
    try:
        position, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return int(position), str(row_id)
    except (ValueError, TypeError):
        raise ValidationFailed("cursor: not a cursor this API returned") from None
