"""The errors a callstats client raises: one class per error code of the API, plus ConnectionFailed.

Every answer of the server that is not a success becomes an ApiError subclass chosen by the envelope's
`error` code (`{"success": false, "message": ..., "error": "NOT_FOUND"}`), or by the HTTP status when
the body is not the envelope; its `message` is the server's own sentence.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any, ClassVar

import httpx


class CallstatsError(Exception):
    """Anything this client raises on purpose."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ConnectionFailed(CallstatsError):
    """The server could not be reached, or the connection broke, and no (more) retry was allowed.

    `cause` is the httpx transport error of the last attempt.
    """

    def __init__(self, message: str, cause: httpx.TransportError | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class ApiError(CallstatsError):
    """The server answered with an error: its HTTP `status`, envelope `code` and `message`.

    `request_id` is the server's `X-Request-Id` when it sent one (a 500 names the log line so).
    """

    status: int = 0
    default_code: ClassVar[str] = "ERROR"

    def __init__(
        self, message: str, *, status: int, code: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code: str = code or self.default_code
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class ValidationError(ApiError):
    """400 VALIDATION_ERROR: the request's id, query or body is malformed; the message says which."""

    default_code = "VALIDATION_ERROR"


class Unauthorized(ApiError):
    """401 UNAUTHORIZED: the API key is missing, unknown or revoked."""

    default_code = "UNAUTHORIZED"


class Forbidden(ApiError):
    """403 FORBIDDEN: the key may not do that (a read key on a writing route)."""

    default_code = "FORBIDDEN"


class NotFound(ApiError):
    """404 NOT_FOUND: no such campaign, contact, connection or callback for this key's account."""

    default_code = "NOT_FOUND"


class MethodNotAllowed(ApiError):
    """405 METHOD_NOT_ALLOWED: the route exists, not for this method."""

    default_code = "METHOD_NOT_ALLOWED"


class Conflict(ApiError):
    """409 CONFLICT: the request contradicts what is stored."""

    default_code = "CONFLICT"


class PayloadTooLarge(ApiError):
    """413 PAYLOAD_TOO_LARGE: the body is over the server's CALLSTATS_MAX_BODY_BYTES."""

    default_code = "PAYLOAD_TOO_LARGE"


class _RetryAfterError(ApiError):
    """An error whose answer says when to try again: `retry_after`, seconds (None when not said)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.retry_after = retry_after


class RateLimited(_RetryAfterError):
    """429 RATE_LIMITED: over the campaign's getCampaignStats quota; `retry_after` seconds to wait."""

    default_code = "RATE_LIMITED"


class ServiceUnavailable(_RetryAfterError):
    """503 SERVICE_UNAVAILABLE: the server cannot serve now (its database); `retry_after` seconds."""

    default_code = "SERVICE_UNAVAILABLE"


class ServerError(ApiError):
    """500 INTERNAL_SERVER_ERROR (or another 5xx): `request_id` names the server's log line about it."""

    default_code = "INTERNAL_SERVER_ERROR"


_BY_CODE: dict[str, type[ApiError]] = {
    cls.default_code: cls
    for cls in (
        ValidationError,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        ServiceUnavailable,
        ServerError,
    )
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: ServiceUnavailable,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The answer's Retry-After in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _envelope(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_from_response(response: httpx.Response) -> ApiError:
    """The ApiError an error answer stands for: its class from the envelope's `error` code, else from
    the HTTP status (ServerError for any other 5xx, ApiError otherwise), with the server's message."""
    body = _envelope(response)
    code = body.get("error") if isinstance(body.get("error"), str) else None
    message = body.get("message")
    if not isinstance(message, str):
        message = response.text.strip()[:500] or response.reason_phrase or "error"
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ApiError
    request_id = response.headers.get("x-request-id")
    if issubclass(cls, _RetryAfterError):
        return cls(
            message,
            status=response.status_code,
            code=code,
            request_id=request_id,
            retry_after=retry_after_seconds(response),
        )
    return cls(message, status=response.status_code, code=code, request_id=request_id)
