"""What text the storage can hold, one rule for both backends. Pure.

PostgreSQL's text types cannot store the NUL character
(https://www.postgresql.org/docs/current/datatype-character.html), so it is refused on SQLite too.
"""

from __future__ import annotations

from typing import Final

NUL: Final = "\x00"
NUL_REASON: Final = "must not contain the NUL character (\\u0000), which cannot be stored"
