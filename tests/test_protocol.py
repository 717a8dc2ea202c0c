"""The HTTP edge (issue 8, items 10, 11, 12 and 14): on every route, in process and on a real server.

- A body nested 100,000 deep is a 400 VALIDATION_ERROR on every POST route, and the server goes on.
- A 405 carries `Allow` (RFC 9110, section 15.5.6), on framework routes and on the hot endpoints.
- The key header's optional whitespace is trimmed on both sides (RFC 9110, section 5.5), everywhere.
- On a real uvicorn server over loopback: a 500 goes out whole and the keep-alive connection stays
  usable; an answer after which the server closes says `Connection: close`; an unexpected error is
  one JSON log line with the id the 500 carries in `X-Request-Id`, and no traceback or absolute path.
"""

from __future__ import annotations

import json
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.pool import NullPool

from callstats.accounts import keys
from callstats.config import sqlalchemy_url
from callstats.db.schema import campaign_counters, campaigns
from tests.conftest import new_campaign
from tests.envelope import assert_error
from tests.refusals import refusing
from tests.servers import HOST, ServerProcess, server_env, start_server
from tests.stream.helpers import new_key

DEEP = 100_000
MAX_BODY = 300_000  # the served test server's body limit: room for a 100,000-deep body
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
REFUSED_NAME = "refused-by-the-test"  # the campaign name the test's trigger makes the database refuse
PADDINGS = [
    pytest.param(" ", "", id="leading-space"),
    pytest.param("", " ", id="trailing-space"),
    pytest.param("  ", "  ", id="spaces-both"),
    pytest.param("\t", "", id="leading-tab"),
    pytest.param("", "\t", id="trailing-tab"),
    pytest.param("\t ", " \t", id="tabs-and-spaces-both"),
]


def deep_bodies() -> list[bytes]:
    """JSON nested DEEP levels: arrays, objects, and an object whose field nests."""
    return [b"[" * DEEP + b"]" * DEEP, b'{"a":' * DEEP + b"1" + b"}" * DEEP, b'{"events":' + b"[" * DEEP]


async def post_paths(client: httpx.AsyncClient, campaign_id: str) -> list[str]:
    """Every POST route the OpenAPI document lists that takes a body under an API key, with a real
    campaign id filled in. Routes whose path names another resource answer for it before reading
    any body (a 400 for an id that is not one, a 404 for an unknown one); the carriers' webhooks read
    a body only once its signature holds (tests/carriers: a signed deep body is kept unmatched)."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    with_body = {path: ops for path, ops in paths.items() if "requestBody" in ops.get("post", {})}
    filled = [path.replace("{campaignId}", campaign_id) for path in with_body]  # deleteCampaign reads none
    found = [path for path in filled if "{" not in path]
    assert {"/createCampaign", "/recordCallEvents", f"/addContacts/{campaign_id}"} <= set(found)
    return found


@pytest.mark.parametrize("body", deep_bodies(), ids=["arrays", "objects", "unfinished"])
async def test_deep_nesting_is_a_400_on_every_post_route(
    client: httpx.AsyncClient, auth: dict[str, str], body: bytes
) -> None:
    """Item 10: 100,000 levels is 400 VALIDATION_ERROR (never a 500, never INTERNAL_SERVER_ERROR)."""
    campaign_id = await new_campaign(client, auth)
    headers = {**auth, "content-type": "application/json"}
    for path in await post_paths(client, campaign_id):
        assert_error(await client.post(path, content=body, headers=headers), 400, "VALIDATION_ERROR")
    assert (await client.get("/health")).status_code == 200


async def test_405_names_the_allowed_methods(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Item 14: every documented path, every other method: 405 with `Allow` listing the path's methods."""
    campaign_id = await new_campaign(client, auth)
    paths = (await client.get("/openapi.json")).json()["paths"]
    checked = 0
    for template, operations in paths.items():
        path = template.replace("{campaignId}", campaign_id)
        allowed = {method.upper() for method in operations}
        for method in set(METHODS) - allowed:
            response = await client.request(method, path, headers=auth)
            assert_error(response, 405, "METHOD_NOT_ALLOWED")
            assert set(response.headers["allow"].split(", ")) == allowed, (method, path)
            checked += 1
    assert checked >= 4 * 8


@pytest.mark.parametrize(("before", "after"), PADDINGS)
async def test_key_whitespace_is_trimmed_on_every_route(
    client: httpx.AsyncClient, write_key: str, before: str, after: str
) -> None:
    """Item 14: spaces and tabs before or after the key are not part of it, on every route alike."""
    padded = {"x-api-key": before + write_key + after}
    campaign_id = await new_campaign(client, padded)
    event = {
        "event_id": "e1",
        "campaign_id": campaign_id,
        "phone": "+14155550100",
        "call_id": "c1",
        "type": "call.started",
        "occurred_at": "2024-01-16T09:00:00Z",
    }
    answers = [
        await client.get("/getCampaigns", headers=padded),
        await client.get(f"/getCampaign/{campaign_id}", headers=padded),
        await client.get(f"/getCampaignStats/{campaign_id}", headers=padded),
        await client.get(f"/getCampaignTimeseries/{campaign_id}", headers=padded),
        await client.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": "+14155550100"}]}, headers=padded
        ),
        await client.post("/recordCallEvents", json={"events": [event]}, headers=padded),
    ]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert answers[4].json()["data"]["accepted"] == 1
    assert answers[5].json()["data"]["applied"] == 1
    # The stream: an unknown campaign is a 404 once the key is accepted (a refused key is a 401).
    stream = await client.get(f"/streamCampaignStats/{uuid.uuid4()}", headers=padded)
    assert_error(stream, 404, "NOT_FOUND")


@pytest.mark.parametrize("inside", ["\n", "\r", "\x00", "x"])
async def test_only_optional_whitespace_is_trimmed(
    client: httpx.AsyncClient, write_key: str, inside: str
) -> None:
    """A newline, CR or NUL around the key is not optional whitespace, and a changed key is a changed key."""
    campaign_id = await new_campaign(client, {"x-api-key": write_key})
    for padded in (write_key + inside, inside + write_key):
        headers = {"x-api-key": padded}
        assert_error(await client.get("/getCampaigns", headers=headers), 401, "UNAUTHORIZED")
        stats = await client.get(f"/getCampaignStats/{campaign_id}", headers=headers)
        assert_error(stats, 401, "UNAUTHORIZED")
        events = await client.post("/recordCallEvents", json={"events": [{}]}, headers=headers)
        assert_error(events, 401, "UNAUTHORIZED")


# A real server on loopback: a raw HTTP/1.1 connection, so nothing hides a dropped connection.


@dataclass
class Answer:
    """One HTTP response as it came off the wire."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class Wire:
    """One keep-alive HTTP/1.1 connection to the server, read byte by byte as a client library would."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=20)
        self.buffer = b""

    def send(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        """Send one request (with Content-Length when there is a body)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        declared = any(name.lower() == "content-length" for name in headers or {})
        if not declared and (body or method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def receive(self) -> Answer:
        """The next whole response; fails if the connection closes before it is complete."""
        head = self._until(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        headers = {}
        for field in fields:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])  # every answer here has one: it goes out whole
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split(" ")[1]), headers, body)

    def exchange(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Answer:
        """Send a request and read its answer."""
        self.send(method, path, headers, body)
        return self.receive()

    def closed_by_server(self) -> bool:
        """Whether the server closed the connection at once (end of stream within 1 s; uvicorn's idle
        keep-alive timeout, 5 s, is not what this looks for)."""
        self.sock.settimeout(1)
        try:
            return self.sock.recv(1) == b""
        except (TimeoutError, ConnectionResetError):
            return False

    def close(self) -> None:
        """Close our end."""
        self.sock.close()

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        self.buffer += chunk


@dataclass
class Served:
    """A `callstats serve` process, a write key on it, its log, and a campaign it cannot show."""

    server: ServerProcess
    key: str
    unreadable: str  # a campaign whose stored rows hold times no code path can format

    def wire(self) -> Wire:
        """A new connection to it."""
        return Wire(self.server.port)

    def log_lines(self) -> list[str]:
        """The server's output so far, one entry per non-empty line."""
        return [line for line in self.server.log.read_text(errors="replace").splitlines() if line.strip()]


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """`callstats serve` (log level info, MAX_BODY limit) on the test database, with two genuine
    unexpected errors and no mock: the database refuses to store a campaign named REFUSED_NAME (a
    database error), and one campaign's rows hold times past year 9999 (a Python error when the API
    formats them, on a framework route and on the stats hot path), as a write from outside the API
    could leave them."""
    key = new_key(database_url)
    env = server_env(database_url, log_level="info", max_body_bytes=str(MAX_BODY))
    with refusing(database_url, "campaigns", "name", REFUSED_NAME):
        server = start_server(env, tmp_path)
        try:
            with httpx.Client(base_url=server.base_url, headers={"x-api-key": key}) as http:
                created = http.post("/createCampaign", json={"name": "unreadable"})
                assert created.status_code == 201, created.text
            unreadable = created.json()["data"]["campaign_id"]
            engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
            with engine.begin() as conn:
                conn.execute(update(campaigns).where(campaigns.c.id == unreadable).values(created_at=2**62))
                counters = campaign_counters.c
                conn.execute(
                    update(campaign_counters)
                    .where(counters.campaign_id == unreadable)
                    .values(first_call_at=2**62)
                )
            engine.dispose()
            yield Served(server, key, unreadable)
        finally:
            server.stop()


FAULTS = ["database-error", "python-error", "hot-path-error"]
MESSAGES = {"hot-path-error": "Failed to retrieve campaign statistics"}  # else "Internal server error"


def provoke(served: Served, wire: Wire, fault: str, headers: dict[str, str] | None = None) -> Answer:
    """A request that fails unexpectedly on `fault`'s path: a real 500."""
    fields = {"x-api-key": served.key, **(headers or {})}
    if fault == "database-error":
        body = json.dumps({"name": REFUSED_NAME}).encode()
        return wire.exchange("POST", "/createCampaign", {**fields, "content-type": "application/json"}, body)
    return wire.exchange(*provoked_path(served, fault), fields)


def provoked_path(served: Served, fault: str) -> tuple[str, str]:
    """The method and path `provoke` sends for `fault`."""
    if fault == "database-error":
        return "POST", "/createCampaign"
    if fault == "hot-path-error":
        return "GET", f"/getCampaignStats/{served.unreadable}"
    return "GET", f"/getCampaign/{served.unreadable}"


def unexpected_lines(served: Served) -> list[dict[str, Any]]:
    """The log's `unexpected_error` lines, parsed."""
    parsed = [json.loads(line) for line in served.log_lines()]
    return [line for line in parsed if line.get("event") == "unexpected_error"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_500_goes_out_whole_and_the_connection_stays_open(served: Served, fault: str) -> None:
    """Item 11: after a 500 the next request on the same keep-alive connection is answered."""
    wire = served.wire()
    try:
        assert wire.exchange("GET", "/health").status == 200
        for _ in range(3):
            answer = provoke(served, wire, fault)
            assert answer.status == 500
            assert answer.json() == {
                "success": False,
                "message": MESSAGES.get(fault, "Internal server error"),
                "error": "INTERNAL_SERVER_ERROR",
            }
            assert answer.headers.get("connection", "keep-alive").lower() != "close"
            assert not wire.closed_by_server()
            again = wire.exchange("GET", "/health")
            assert again.status == 200 and again.json()["success"] is True
    finally:
        wire.close()


@pytest.mark.parametrize("fault", FAULTS)
def test_a_500_is_one_json_log_line_with_its_request_id(served: Served, fault: str) -> None:
    """Item 12: one structured line per unexpected error, matched by X-Request-Id; no traceback, no
    absolute path, no exception message (such as the trigger's 'refused by the test') anywhere."""
    wire = served.wire()
    try:
        answers = [provoke(served, wire, fault) for _ in range(2)]
    finally:
        wire.close()
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids)
    lines = served.log_lines()
    parsed = [json.loads(line) for line in lines]  # every line of the log is a JSON object
    assert all({"time", "level", "event"} <= set(p) for p in parsed), lines
    errors = unexpected_lines(served)
    assert [e["request_id"] for e in errors] == ids
    method, path = provoked_path(served, fault)
    for error in errors:
        assert (error["level"], error["method"], error["path"]) == ("ERROR", method, path)
        assert error["exc_type"] and error["where"].startswith("callstats/"), error
    text = "\n".join(lines)
    for leak in ("Traceback", "Exception in ASGI", 'File "', "refused by the test", sys.prefix, "/src/"):
        assert leak not in text, leak


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("retry-42.a:b", True),
        (" \tabc-123\t ", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("two words", False),
        ("caf\xe9", False),
        ("", False),
    ],
    ids=["sane", "with-ows", "128-chars", "too-long", "space-inside", "not-ascii", "empty"],
)
def test_a_sane_client_request_id_is_reused(served: Served, sent: str, kept: bool) -> None:
    """Item 12: a client's X-Request-Id (1-128 printable ASCII characters) names the error; another
    is replaced by a new id. The answer and the log line carry the same one."""
    wire = served.wire()
    try:
        answer = provoke(served, wire, "python-error", {"X-Request-Id": sent})
    finally:
        wire.close()
    assert answer.status == 500
    returned = answer.headers["x-request-id"]
    if kept:
        assert returned == sent.strip(" \t")
    else:
        assert returned != sent and len(returned) == 32 and int(returned, 16) >= 0
    assert [e["request_id"] for e in unexpected_lines(served)] == [returned]


def test_a_connection_the_server_closes_is_told_so(served: Served) -> None:
    """Item 11: a 413 for a declared body over the limit says `Connection: close`, then closes; so does
    an answer to a client that asked to close. Neither closes without saying so."""
    wire = served.wire()
    try:
        wire.send("POST", "/createCampaign", {"x-api-key": served.key, "Content-Length": str(MAX_BODY + 1)})
        answer = wire.receive()
        assert answer.status == 413 and answer.headers["connection"].lower() == "close"
        assert answer.json()["error"] == "PAYLOAD_TOO_LARGE"
        assert wire.closed_by_server()
    finally:
        wire.close()
    wire = served.wire()
    try:
        answer = wire.exchange("GET", "/health", {"Connection": "close"})
        assert answer.status == 200 and answer.headers["connection"].lower() == "close"
        assert wire.closed_by_server()
    finally:
        wire.close()
    wire = served.wire()
    try:
        assert provoke(served, wire, "python-error").status == 500
        assert not wire.closed_by_server()  # kept open: it said nothing about closing
    finally:
        wire.close()


def test_deep_nesting_on_a_real_server(served: Served) -> None:
    """Item 10 on the wire: every POST route answers 400 to a 100,000-deep body, on one connection."""
    body = b"[" * DEEP + b"]" * DEEP
    with httpx.Client(base_url=served.server.base_url, headers={"x-api-key": served.key}) as http:
        campaign = http.post("/createCampaign", json={"name": "deep"})
        assert campaign.status_code == 201, campaign.text
        campaign_id = campaign.json()["data"]["campaign_id"]
    wire = served.wire()
    try:
        for path in ("/createCampaign", "/recordCallEvents", f"/addContacts/{campaign_id}"):
            headers = {"x-api-key": served.key, "content-type": "application/json"}
            answer = wire.exchange("POST", path, headers, body)
            assert answer.status == 400 and answer.json()["error"] == "VALIDATION_ERROR"
        assert wire.exchange("GET", "/health").status == 200
    finally:
        wire.close()
    assert not unexpected_lines(served)


@pytest.mark.parametrize(("before", "after"), PADDINGS)
def test_key_whitespace_on_the_wire(served: Served, before: str, after: str) -> None:
    """Item 14 through uvicorn's parser: optional whitespace on either side of the key is trimmed
    (the parser drops the leading part, callstats the rest), on a framework route and the hot ones."""
    wire = served.wire()
    try:
        headers = {"x-api-key": before + served.key + after}
        body = json.dumps({"name": "padded"}).encode()
        created = wire.exchange(
            "POST", "/createCampaign", {**headers, "content-type": "application/json"}, body
        )
        assert created.status == 201
        campaign_id = created.json()["data"]["campaign_id"]
        assert wire.exchange("GET", f"/getCampaign/{campaign_id}", headers).status == 200
        assert wire.exchange("GET", f"/getCampaignStats/{campaign_id}", headers).status == 200
        events = json.dumps({"events": [{"event_id": "e1"}]}).encode()
        recorded = wire.exchange("POST", "/recordCallEvents", headers, events)
        assert recorded.status == 200 and recorded.json()["data"]["rejected"] == 1
        bad = {"x-api-key": before + keys.generate().plaintext + after}
        assert wire.exchange("GET", f"/getCampaign/{campaign_id}", bad).status == 401
        assert wire.exchange("GET", f"/getCampaignStats/{campaign_id}", bad).status == 401
    finally:
        wire.close()
