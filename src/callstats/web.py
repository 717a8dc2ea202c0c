"""HTTP plumbing shared by every route: the error handler, the body limit, raw bodies, the dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from callstats.db.engine import is_unreachable
from callstats.errors import (
    ApiError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
    rendered,
    where,
)

log = logging.getLogger("callstats.web")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_json(error: ApiError) -> JSONResponse:
    """The response for an ApiError."""
    status, headers, body = rendered(error)
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_json(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors()[:3]:
        if error.get("type") == "json_invalid":
            parts.append("body: not valid JSON")
            continue
        loc = [str(p) for p in error.get("loc", ()) if p != "body"] or ["body"]
        parts.append(f"{'.'.join(loc)}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return error_json(ValidationFailed("; ".join(parts)))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_json(NotFound("No such route"))
    if exc.status_code == 405:
        return error_json(MethodNotAllowed())
    error = ApiError(str(exc.detail))
    error.status = exc.status_code
    return error_json(error)


def as_api_error(exc: Exception) -> ApiError:
    """The error to show for any exception; a database or unexpected one is logged without details."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DBAPIError):
        log.warning("request failed: database error %s", type(exc).__name__)
        return ServiceUnavailable() if is_unreachable(exc) else InternalError()
    log.error("unexpected error: %s", where(exc))
    return InternalError()


async def send_json(send: Send, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
    """Send a whole JSON response from a plain ASGI endpoint (the hot paths skip the framework)."""
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    return error_json(as_api_error(exc))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    return error_json(as_api_error(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, expected or not, in the seed's envelope."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


class Dispatcher:
    """The ASGI entry point: the hot paths (stats, events) first, then the framework; a body-size limit."""

    def __init__(
        self, api: FastAPI, stats: AsgiApp, stats_prefix: str, max_body_bytes: int, hot: dict[str, AsgiApp]
    ) -> None:
        self.api = api
        self.stats = stats
        self.stats_prefix = stats_prefix
        self.max_body_bytes = max_body_bytes
        self.hot = hot  # exact path -> endpoint served before the framework

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI connection."""
        if scope["type"] == "http" and scope["path"].startswith(self.stats_prefix):
            await self.stats(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            if self._declared_length(scope) > self.max_body_bytes:
                await error_json(PayloadTooLarge(self._too_large()))(scope, receive, send)
                return
            receive = self._limited(receive)
        endpoint = self.hot.get(scope["path"]) if scope["type"] == "http" else None
        await (endpoint or self.api)(scope, receive, send)

    def _too_large(self) -> str:
        return f"Request body over the limit of {self.max_body_bytes} bytes"

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return int(value) if value.isdigit() else 0
        return 0

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                raise PayloadTooLarge(self._too_large())
            return message

        return limited
