"""API errors: each class knows its HTTP status and its error code."""

from __future__ import annotations

import traceback


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


class MethodNotAllowed(ApiError):
    """The route exists but not for this method."""

    status = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed"


class Conflict(ApiError):
    """A transition that is not allowed, or an idempotency key reused with another body."""

    status = 409
    code = "CONFLICT"
    default_message = "Conflict"


class PayloadTooLarge(ApiError):
    """The body is over the configured limit."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Request body too large"


class UnsupportedMediaType(ValidationFailed):
    """A body in a format the route does not take."""

    default_message = "Unsupported Content-Type"


class RateLimited(ApiError):
    """Over the rate limit."""

    status = 429
    code = "RATE_LIMITED"
    default_message = "Rate limit exceeded"


class InternalError(ApiError):
    """Unexpected failure."""


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
    """An exception's type and the line that raised it: enough to find it, with no message, SQL or trace."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename.rsplit('/site-packages/', 1)[-1]}:{last.lineno}"
