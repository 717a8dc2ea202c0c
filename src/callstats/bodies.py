"""What a request body may hold, one rule for every route and both backends.

- JSON is parsed with a nesting limit (orjson's: 1,024 levels), so a hostile body
  is a 400, never a RecursionError.
- Text may not hold the NUL character: PostgreSQL's text types cannot store it
  (https://www.postgresql.org/docs/current/datatype-character.html), so it is refused
  on SQLite too.
- Integers are strict (JSON numbers without a fraction; no booleans, floats or
  strings) and fit PostgreSQL's bigint (and SQLite's INTEGER): at most 2**63 - 1.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BeforeValidator, Strict, ValidationError

from callstats.core.text import NUL, NUL_REASON
from callstats.errors import ValidationFailed

MAX_DEPTH = 1_024  # orjson's own limit; the fallback parser is held to the same
MAX_BIGINT = 2**63 - 1
_DIGITS = re.compile(r"-?[0-9]{1,19}")


class _TooDeep(Exception):
    """A JSON value nested deeper than MAX_DEPTH."""


def parse_json(body: bytes) -> Any:
    """The JSON value of a request body, or a 400 `ValidationFailed` saying why it is not one.

    orjson first; what it refuses but Python's json reads (NaN, integers over 64 bits, UTF-16) is
    read by json, held to the same nesting limit. Raises ValidationFailed for invalid JSON, nesting
    deeper than MAX_DEPTH levels, or bytes that are not text.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise ValidationFailed(f"body: JSON nested deeper than {MAX_DEPTH} levels") from None
    try:
        value = json.loads(body)
        _check_depth(value)
    except (_TooDeep, RecursionError):
        raise ValidationFailed(f"body: JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("body: not valid JSON") from None
    return value


def _check_depth(value: Any) -> None:
    """Raise _TooDeep when `value` nests deeper than MAX_DEPTH (iteratively: no recursion here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise _TooDeep()
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def nesting_depth(value: Any) -> int:
    """How deeply a JSON value nests objects and arrays (a scalar is 0, `{}` 1); iterative."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def storable_text(value: str) -> str:
    """`value` unchanged, or ValueError (NUL_REASON) when it holds a NUL character."""
    if NUL in value:
        raise ValueError(NUL_REASON)
    return value


def nul_free(value: Any) -> bool:
    """Whether no string in a JSON value (object keys included) holds a NUL character."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


StoredText = Annotated[str, AfterValidator(storable_text)]
"""A string field: refused with NUL_REASON when it holds a NUL character."""


def _whole_number_text(value: Any) -> Any:
    """A query string's integer as digits only (an optional minus): `2.0`, `1e1` and `true` are refused."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("must be a whole number written with digits")
    return value


WholeNumber = BeforeValidator(_whole_number_text)
"""For an integer query parameter: digits only, the text form of the body's strict integers. Put it
after a bounded int, `Annotated[Annotated[int, Ge(1), Le(200)], WholeNumber, Query()]`, so OpenAPI
keeps the bounds."""

StrictInt = Annotated[int, Strict()]
"""An integer field: a JSON integer, no bool, float or string. Each field sets its own bounds with
`Field(ge=..., le=...)`, `le` at most MAX_BIGINT (a bound inside this alias would override the field's)."""


def validation_message(exc: ValidationError) -> str:
    """Up to three of pydantic's errors as `field: reason`, joined by '; ': one readable sentence."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)
