"""HTTP plumbing shared by every route: the error handler, the body limit, raw bodies, the dispatcher."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from callstats import logs
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
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SANE_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no space, bounded
_campaign_id_shape = re.compile(r"[0-9a-fA-F-]{32,36}").fullmatch  # what a logged campaign id may look like
REQUEST_ID_KEY = "callstats.request_id"  # where a request's id is kept in its ASGI scope


def error_json(error: ApiError) -> JSONResponse:
    """The response for an ApiError."""
    status, headers, body = rendered(error)
    return JSONResponse(body, status_code=status, headers=headers)


def request_id(scope: Scope) -> str:
    """The id that ties an answer to its log lines: the client's `X-Request-Id` when sane (1-128
    printable ASCII characters, optional whitespace around it trimmed), else a new one (32 hex digits,
    _new_request_id). Kept in the scope, so a request's 500 and its access line name the same id."""
    kept: str | None = scope.get(REQUEST_ID_KEY)
    if kept is None:
        kept = scope[REQUEST_ID_KEY] = _sent_request_id(scope) or _new_request_id()
    return kept


def _new_request_id() -> str:
    """A new request id: this process's 64 random bits (from the OS, drawn again in a forked child)
    then a counter, 32 hex digits. Unique by construction, no system call per request; it names a
    request in the logs and is no secret (a client may send its own)."""
    return f"{_request_ids.prefix}{next(_request_ids.counter):016x}"


class _RequestIds:
    def __init__(self) -> None:
        self.draw()

    def draw(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()


_request_ids = _RequestIds()
os.register_at_fork(after_in_child=_request_ids.draw)


def _sent_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            sent = bytes(value).decode("latin-1").strip(" \t")
            if _SANE_REQUEST_ID.fullmatch(sent):
                return sent
    return None


def as_api_error(exc: Exception, scope: Scope, unexpected: type[InternalError] = InternalError) -> ApiError:
    """The error to show for any exception of a request: the one mapper of every route.

    An ApiError as it is; an unreachable database (or other backend) a 503 with Retry-After; anything
    else an `unexpected` (500) whose `X-Request-Id` names the one log line written for it.
    """
    if isinstance(exc, ApiError):
        return exc
    method, path = str(scope.get("method", "")), str(scope.get("path", ""))
    if is_unreachable(exc):
        logs.backend_unavailable(exc, method, path)
        return ServiceUnavailable()
    rid = request_id(scope)
    logs.unexpected_error(exc, rid, method, path)
    return unexpected(request_id=rid)


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
    """The framework's own HTTP errors in the envelope, each with the code its status has."""
    assert isinstance(exc, StarletteHTTPException)
    return error_json(_framework_error(exc))


def _framework_error(exc: StarletteHTTPException) -> ApiError:
    status = exc.status_code
    if status == 400:  # FastAPI's own body parser failed (bad JSON, nesting past its recursion limit)
        return ValidationFailed("body: not valid JSON")
    if status == 404:
        return NotFound("No such route")
    if status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed(m.strip() for m in allowed.split(",") if m.strip())
    if status == 413:
        return PayloadTooLarge()
    error = ApiError(str(exc.detail))
    error.status = status
    error.code = "VALIDATION_ERROR" if status < 500 else "INTERNAL_SERVER_ERROR"
    return error


async def send_json(send: Send, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
    """Send a whole JSON response from a plain ASGI endpoint (the hot paths skip the framework)."""
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return error_json(as_api_error(exc, request.scope))


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, expected or not, in the seed's envelope."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


class Dispatcher:
    """The ASGI entry point: the hot paths (stats, events) first, then the framework; a body-size limit;
    one access line per HTTP request (docs/deployment.md, Logs) unless the app's settings
    (`api.state.settings.access_log`, CALLSTATS_ACCESS_LOG) turn it off."""

    def __init__(
        self, api: FastAPI, stats: AsgiApp, stats_prefix: str, max_body_bytes: int, hot: dict[str, AsgiApp]
    ) -> None:
        self.api = api
        self.stats = stats
        self.stats_prefix = stats_prefix
        self.stats_route = stats_prefix + "{campaignId}"
        self.max_body_bytes = max_body_bytes
        self.hot = hot  # exact path -> endpoint served before the framework
        self.access_log: bool = getattr(getattr(api.state, "settings", None), "access_log", True)
        self.access = logs.AccessLog()  # lines waiting for their flush (logs.AccessLog)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI connection; keep an HTTP request's access line for the next flush."""
        if scope["type"] != "http":
            await self.api(scope, receive, self._flushing(send) if scope["type"] == "lifespan" else send)
        elif self.access_log:
            await self._logged(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    def _flushing(self, send: Send) -> Send:
        """`send` for the ASGI lifespan: the waiting access lines are written before the server
        hears that shutdown is complete (and the process may end)."""

        async def flushing(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown."):
                self.access.flush()
            await send(message)

        return flushing

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request, then keep its access line for the next flush, whatever happened.

        The request path only appends a tuple (logs.AccessLog renders and writes later, in batches);
        `sent` is a plain function handing back send's awaitable, so no coroutine is added per message.
        """
        started = perf_counter()
        status: int | None = None

        def sent(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        route: str | None = None
        try:
            route = await self._http(scope, receive, sent)
        finally:
            ended = perf_counter()
            campaign_id = self._campaign_id(scope, route) if route is not None else None
            self.access.add((scope["method"], route, status, started, ended, request_id(scope), campaign_id))

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> str | None:
        """Serve one HTTP request; the template of the route that answered it (None: no route matched)."""
        if scope["path"].startswith(self.stats_prefix):
            await self.stats(scope, receive, send)
            return self.stats_route
        endpoint = self.hot.get(scope["path"])
        if scope["method"] in ("POST", "PUT", "PATCH"):
            if self._declared_length(scope) > self.max_body_bytes:
                await error_json(PayloadTooLarge(self._too_large()))(scope, receive, send)
                return scope["path"] if endpoint is not None else None
            receive = self._limited(receive)
        if endpoint is not None:
            await endpoint(scope, receive, send)  # answers every error itself, in the envelope
            return str(scope["path"])
        await self._framework(scope, receive, send)
        return _route_template(scope)

    def _campaign_id(self, scope: Scope, route: str) -> str | None:
        """The campaign id in the path of a route that names one, when it has a campaign id's shape."""
        if route is self.stats_route:  # the stats endpoint has no path_params: the path's tail
            raw = scope["path"][len(self.stats_prefix) :]
        elif "{campaignId}" in route:
            raw = scope.get("path_params", {}).get("campaignId")
        else:
            return None
        return raw if isinstance(raw, str) and _campaign_id_shape(raw) else None

    async def _framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an HTTP request with the framework; no exception escapes to the server.

        Starlette's outermost middleware answers an unexpected error through our handler (which logs
        it) and then raises it again; an ASGI server that sees it closes the keep-alive connection
        without a word (uvicorn also logs its traceback). Here it stops: when the answer went out
        the connection stays usable, and when none started, this sends the 500 itself.
        """
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.api(scope, receive, tracked)
        except Exception as exc:
            if not started:
                await error_json(as_api_error(exc, scope))(scope, receive, send)

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


def _route_template(scope: Scope) -> str | None:
    """The path template of the framework route that served `scope` (a mount's, for static files)."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    if "path_params" in scope:  # a mount matched (FastAPI names no route for it)
        return f"{scope.get('root_path', '')}/{{path}}"
    return None
