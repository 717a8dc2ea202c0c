"""The error envelope every refusal must be: `{success: false, message, error}`, leaking nothing."""

from __future__ import annotations

import httpx

LEAK_MARKERS = (
    "traceback",
    'file "',
    "select ",
    "insert ",
    "drop ",
    "sqlalchemy",
    "psycopg",
    "sqlite",
    "campaign_counters",
    "api_keys",
    "secret_hash",
    "127.0.0.1",
    "refused",
)


def assert_error(response: httpx.Response, status: int, code: str, *, names: str | None = None) -> None:
    """The response is the envelope `{success: false, message, error}` and leaks nothing."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "message", "error"}, body
    assert body["success"] is False
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"].strip()
    lowered = response.text.lower()
    assert not [marker for marker in LEAK_MARKERS if marker in lowered], response.text
    if names is not None:
        assert names in body["message"], f"message should name {names!r}: {body['message']!r}"
