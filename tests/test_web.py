"""web.HotEndpoint, the base of the two plain ASGI endpoints: method, errors, headers, body, answer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from callstats.errors import Conflict, PayloadTooLarge, StatsFailed
from callstats.web import Answer, HotEndpoint, Message, Receive, Scope


class Echo(HotEndpoint):
    """A POST endpoint answering its body's length and its key header, or raising what it is given."""

    method = "POST"
    unexpected = StatsFailed

    def __init__(self, raised: Exception | None = None) -> None:
        self.raised = raised

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        if self.raised is not None:
            raise self.raised
        body = await self.read_body(receive)
        if isinstance(body, PayloadTooLarge):
            raise body
        key = self.header(scope, b"x-api-key")
        return 201, [("X-Seen", "yes")], orjson.dumps({"length": len(body), "key": key and key.decode()})


async def served(endpoint: HotEndpoint, method: str, *chunks: Message) -> list[Message]:
    """The messages `endpoint` sends for one request whose body arrives as `chunks`."""
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": "/echo",
        "headers": [(b"x-api-key", b"first"), (b"x-api-key", b"second")],
    }
    pending = list(chunks)
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await endpoint(scope, receive, send)
    return sent


def answer_of(sent: list[Message]) -> tuple[int, dict[bytes, bytes], Any]:
    """Status, headers and parsed body of the two messages of a whole answer."""
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    headers = dict(start["headers"])
    assert headers[b"content-length"] == str(len(body["body"])).encode()
    return start["status"], headers, orjson.loads(body["body"])


async def test_the_answer_is_sent_as_json_with_its_headers() -> None:
    """A body in two chunks is read whole; the first of two x-api-key headers is the one read."""
    sent = await served(
        Echo(),
        "POST",
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cde"},
    )
    status, headers, body = answer_of(sent)
    assert (status, headers[b"content-type"], headers[b"x-seen"]) == (201, b"application/json", b"yes")
    assert body == {"length": 5, "key": "first"}


async def test_another_method_is_405_with_allow() -> None:
    """Only the endpoint's method is served; the answer names it in Allow."""
    status, headers, body = answer_of(await served(Echo(), "GET"))
    assert (status, headers[b"allow"], body["error"]) == (405, b"POST", "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    ("raised", "status", "message"),
    [
        (Conflict("taken"), 409, "taken"),
        (PayloadTooLarge("too big"), 413, "too big"),
        (RuntimeError("secret SQL"), 500, "Failed to retrieve campaign statistics"),
    ],
)
async def test_errors_are_rendered_by_the_one_mapper(raised: Exception, status: int, message: str) -> None:
    """An ApiError as it is, anything else the endpoint's own 500 class with its X-Request-Id."""
    got, headers, body = answer_of(await served(Echo(raised), "POST"))
    assert (got, body["message"], body["success"]) == (status, message, False)
    if status == 500:
        assert len(headers[b"x-request-id"]) == 32


async def test_a_client_gone_before_its_body_is_not_answered() -> None:
    """http.disconnect while the body is read: nothing is sent."""
    assert await served(Echo(), "POST", {"type": "http.disconnect"}) == []


async def test_a_body_over_the_limit_is_returned_not_raised() -> None:
    """The Dispatcher's receive raises PayloadTooLarge; read_body hands it back, for the endpoint to
    tell after its key check."""
    too_large = PayloadTooLarge()

    async def receive() -> Message:
        raise too_large

    assert await HotEndpoint.read_body(receive) is too_large
