"""The server URL the client commands (`import`, `watch`) talk to, checked before any connection."""

from __future__ import annotations

import httpx


class BadUrl(ValueError):
    """A server URL that cannot work: `str()` is one line saying why."""


def check_url(url: str) -> str:
    """The server URL without its trailing slash; BadUrl if it is not http(s)://HOST[:PORT][/PATH]."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BadUrl(f"{url!r} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise BadUrl(f"{url!r} must start with http:// or https:// (for example http://127.0.0.1:8000)")
    if not parsed.host:
        raise BadUrl(f"{url!r} names no host (for example http://127.0.0.1:8000)")
    return url.rstrip("/")
