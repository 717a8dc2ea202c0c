"""API errors: each class knows its HTTP status and its error code."""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from pathlib import Path

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent) + "/"  # the folder holding callstats/


class ApiError(Exception):
    """An error shown to the client in the seed's envelope."""

    status = 500
    code = "INTERNAL_SERVER_ERROR"
    default_message = "Internal server error"

    def __init__(self, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, object]:
        """The JSON envelope of this error."""
        return {"success": False, "message": self.message, "error": self.code}


class ValidationFailed(ApiError):
    """Malformed id, body or query."""

    status = 400
    code = "VALIDATION_ERROR"
    default_message = "Invalid request"


class Unauthorized(ApiError):
    """Missing, unknown or revoked API key."""

    status = 401
    code = "UNAUTHORIZED"
    default_message = "Missing or invalid API key"


class Forbidden(ApiError):
    """The key is valid but lacks the scope."""

    status = 403
    code = "FORBIDDEN"
    default_message = "This API key may not do that"


class NotFound(ApiError):
    """The resource does not exist for this account."""

    status = 404
    code = "NOT_FOUND"
    default_message = "Not found"


class CampaignNotFound(NotFound):
    """No such campaign for this key's account."""

    default_message = "Campaign not found"


class ContactNotFound(NotFound):
    """No contact with this id in this campaign of the account (or no such campaign)."""

    default_message = "Contact not found"


class MethodNotAllowed(ApiError):
    """The route exists but not for this method; `allowed` names the methods it has.

    A 405 carries an `Allow` header listing them (RFC 9110, section 15.5.6).
    """

    status = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed"

    def __init__(self, allowed: Iterable[str], message: str | None = None) -> None:
        super().__init__(message, headers={"Allow": ", ".join(sorted(allowed))})


class Conflict(ApiError):
    """A transition that is not allowed, or an idempotency key reused with another body."""

    status = 409
    code = "CONFLICT"
    default_message = "Conflict"


class PayloadTooLarge(ApiError):
    """The body is over the configured limit.

    The connection is closed after the answer, and the answer says so (`Connection: close`): the rest
    of the body is not worth reading (RFC 9110, section 15.5.14).
    """

    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Request body too large"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Connection": "close"})


class RateLimited(ApiError):
    """Over the rate limit."""

    status = 429
    code = "RATE_LIMITED"
    default_message = "Rate limit exceeded"


class InternalError(ApiError):
    """Unexpected failure; `request_id` (sent as `X-Request-Id`) matches the answer to its log line."""

    def __init__(self, message: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message, headers={"X-Request-Id": request_id} if request_id else None)


class StatsFailed(InternalError):
    """Unexpected failure on the stats route."""

    default_message = "Failed to retrieve campaign statistics"


class ServiceUnavailable(ApiError):
    """The database or another required backend cannot be reached."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "A required backend is unavailable, try again shortly"

    def __init__(self, message: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def rendered(error: ApiError) -> tuple[int, dict[str, str], dict[str, object]]:
    """Status, headers and JSON body of an error: the one place errors are shaped."""
    return error.status, error.headers, error.body()


def where(exc: BaseException) -> str:
    """Where an exception was raised, with no message, SQL or absolute path: `file:line in function`.

    The innermost frame in callstats' own code (the line an operator can act on), else the innermost
    frame; the file is relative to the folder holding the package (`callstats/calls/group.py`), or to
    site-packages for a library, or only its name.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown"
    ours = [f for f in frames if f.filename.startswith(_PACKAGE_ROOT + "callstats/")]
    frame = (ours or frames)[-1]
    return f"{_relative(frame.filename)}:{frame.lineno} in {frame.name}"


def _relative(filename: str) -> str:
    """A source file's path without the machine's part: package-relative, or its bare name."""
    if filename.startswith(_PACKAGE_ROOT):
        return filename[len(_PACKAGE_ROOT) :]
    if "/site-packages/" in filename:
        return filename.rsplit("/site-packages/", 1)[1]
    return filename.rsplit("/", 1)[-1]
