"""The error contract of every route: each row of the semantics table, in the seed's envelope."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from callstats import logs
from callstats.accounts import keys
from callstats.accounts.service import create_key, revoke_key
from callstats.app import CallstatsApp
from callstats.config import Settings, is_sqlite, sqlalchemy_url
from callstats.db import migrate
from callstats.errors import Conflict, InternalError, NotFound, StatsFailed, rendered
from callstats.web import as_api_error, request_id
from tests.apps import serving
from tests.conftest import new_campaign
from tests.envelope import assert_error
from tests.factories import PHONE, call_event, campaign_with_contact

UNREACHABLE_DATABASE_URL = "postgresql://postgres@127.0.0.1:1/test"


def mistyped(key: str) -> str:
    """The key with one character of its secret changed, as a typo would."""
    position = len(keys.PREFIX) + keys.KEY_ID_LENGTH + 5
    replacement = "B" if key[position] == "A" else "A"
    return key[:position] + replacement + key[position + 1 :]


def id_routes(campaign_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, request kwargs) of every route that takes a campaign id."""
    return [
        ("GET", f"/getCampaign/{campaign_id}", {}),
        ("GET", f"/getCampaignStats/{campaign_id}", {}),
        ("POST", f"/addContacts/{campaign_id}", {"json": {"contacts": [{"phone": PHONE}]}}),
    ]


def all_routes(campaign_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, request kwargs) of every authenticated route."""
    return [
        *id_routes(campaign_id),
        ("GET", "/getCampaigns", {}),
        ("POST", "/createCampaign", {"json": {"name": "x"}}),
        (
            "POST",
            "/recordCallEvents",
            {"json": {"events": [call_event(campaign_id, "e1", "c1", "call.started")]}},
        ),
    ]


# 400 VALIDATION_ERROR


BAD_REQUESTS = [
    ("GET", "/getCampaign/not-a-uuid", {}, "campaignId"),
    ("GET", "/getCampaignStats/not-a-uuid", {}, "campaignId"),
    ("GET", "/getCampaignStats/", {}, "campaignId"),
    ("POST", "/addContacts/not-a-uuid", {"json": {"contacts": [{"phone": PHONE}]}}, "campaignId"),
    ("POST", "/createCampaign", {"json": {}}, "name"),
    ("POST", "/createCampaign", {"json": {"name": "   "}}, "name"),
    ("POST", "/createCampaign", {"json": {"name": "x" * 201}}, "name"),
    ("POST", "/createCampaign", {"json": {"name": "x", "max_attempts": 0}}, "max_attempts"),
    ("POST", "/createCampaign", {"json": {"name": "x", "max_attempts": "many"}}, "max_attempts"),
    ("POST", "/createCampaign", {"json": {"name": "x", "retry_on": ["answered"]}}, "retry_on"),
    ("POST", "/createCampaign", {"json": {"name": "x", "retry_on": ["hung_up"]}}, "retry_on"),
    ("POST", "/createCampaign", {"json": {"name": "x", "colour": "red"}}, "colour"),
    ("POST", "/createCampaign", {"json": ["x"]}, "body"),
    pytest.param(
        "POST",
        "/createCampaign",
        {"content": b'{"name": ', "headers": {"content-type": "application/json"}},
        "body",
        id="createCampaign-malformed-json",
    ),
    ("POST", "/addContacts/{cid}", {"content": b"not json"}, "body"),
    ("POST", "/addContacts/{cid}", {"json": {"people": []}}, "contacts"),
    (
        "POST",
        "/addContacts/{cid}",
        {"content": b"name\nBob\n", "headers": {"content-type": "text/csv"}},
        "phone",
    ),
    ("POST", "/recordCallEvents", {"content": b"nope"}, "body"),
    ("POST", "/recordCallEvents", {"json": {}}, "events"),
    ("POST", "/recordCallEvents", {"json": {"events": []}}, "events"),
    ("GET", "/getCampaigns?limit=0", {}, "limit"),
    ("GET", "/getCampaigns?limit=201", {}, "limit"),
    ("GET", "/getCampaigns?limit=ten", {}, "limit"),
    ("GET", "/getCampaigns?cursor=not-a-cursor", {}, "cursor"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "field"), BAD_REQUESTS)
async def test_malformed_input_is_400_naming_the_field(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    method: str,
    path: str,
    kwargs: dict[str, Any],
    field: str,
) -> None:
    """A malformed id, body or query is a 400 whose message names the field."""
    if "{cid}" in path:
        path = path.replace("{cid}", await new_campaign(client, auth))
    request = dict(kwargs)
    headers = {**auth, **request.pop("headers", {})}
    response = await client.request(method, path, headers=headers, **request)
    assert_error(response, 400, "VALIDATION_ERROR", names=field)


# 401 UNAUTHORIZED


@pytest.mark.parametrize("kind", ["missing", "unknown", "revoked", "mistyped", "wrong-secret"])
async def test_bad_keys_are_401_on_every_route(
    app: CallstatsApp,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    make_key: Callable[..., str],
    kind: str,
) -> None:
    """A missing, unknown, revoked or mistyped key is refused everywhere, the same for any campaign."""
    campaign_id = await campaign_with_contact(client, auth)
    if kind == "missing":
        headers: dict[str, str] = {}
    elif kind == "unknown":
        headers = {"x-api-key": keys.generate().plaintext}
    elif kind == "revoked":
        created = create_key(app.db, "acme")
        assert revoke_key(app.db, created.key_id)
        headers = {"x-api-key": created.plaintext}
    elif kind == "mistyped":
        headers = {"x-api-key": mistyped(make_key())}
    else:  # a well-formed key (checksum right) naming a real key id, with another secret
        real_id = keys.parse_key_id(make_key())
        body = f"{keys.PREFIX}{real_id}_{'s' * keys.SECRET_LENGTH}"
        headers = {"x-api-key": body + keys._checksum(body)}
    for method, path, kwargs in all_routes(campaign_id):
        response = await client.request(method, path, headers=headers, **kwargs)
        assert_error(response, 401, "UNAUTHORIZED")
        if campaign_id in path:
            other = await client.request(
                method, path.replace(campaign_id, str(uuid.uuid4())), headers=headers, **kwargs
            )
            assert (other.status_code, other.content) == (response.status_code, response.content), path


async def test_revoked_key_message_says_so(app: CallstatsApp, client: httpx.AsyncClient) -> None:
    """A revoked key is told it was revoked, on the hot path and elsewhere."""
    created = create_key(app.db, "acme")
    revoke_key(app.db, created.key_id)
    for path in ("/getCampaigns", f"/getCampaignStats/{uuid.uuid4()}"):
        response = await client.get(path, headers={"x-api-key": created.plaintext})
        assert_error(response, 401, "UNAUTHORIZED", names="revoked")


# 403 FORBIDDEN


async def test_read_key_writing_is_403(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """A read-only key may not create, add contacts or record events, and nothing is stored."""
    campaign_id = await campaign_with_contact(client, auth)
    read = {"x-api-key": make_key("acme", "read")}
    writes = [(m, p, k) for m, p, k in all_routes(campaign_id) if m == "POST"]
    assert len(writes) == 3
    for method, path, kwargs in writes:
        assert_error(await client.request(method, path, headers=read, **kwargs), 403, "FORBIDDEN")
    listing = (await client.get("/getCampaigns", headers=read)).json()["data"]
    assert [c["campaign_id"] for c in listing] == [campaign_id]
    stats = (await client.get(f"/getCampaignStats/{campaign_id}", headers=read)).json()["data"]
    assert (stats["total_contacts"], stats["calls_in_progress"]) == (1, 0)


# 404 NOT_FOUND


async def test_foreign_campaign_is_indistinguishable_from_a_missing_one(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """Another account's campaign answers byte for byte like one that does not exist, on every id route."""
    campaign_id = await campaign_with_contact(client, auth)
    stranger = {"x-api-key": make_key("globex")}
    for (method, path, kwargs), (_, missing_path, _) in zip(
        id_routes(campaign_id), id_routes(str(uuid.uuid4())), strict=True
    ):
        foreign = await client.request(method, path, headers=stranger, **kwargs)
        missing = await client.request(method, missing_path, headers=stranger, **kwargs)
        assert_error(foreign, 404, "NOT_FOUND")
        assert foreign.json()["message"] == "Campaign not found"
        assert (foreign.status_code, foreign.content) == (missing.status_code, missing.content), path
        assert sorted(foreign.headers.keys()) == sorted(missing.headers.keys()), path
    stats = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert stats["total_contacts"] == 1


async def test_foreign_campaign_events_are_rejected_like_missing_ones(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """recordCallEvents for another account's campaign says 'not found', exactly as for no campaign."""
    campaign_id = await campaign_with_contact(client, auth)
    stranger = {"x-api-key": make_key("globex")}
    events = [
        call_event(campaign_id, "e1", "c1", "call.started"),
        call_event(str(uuid.uuid4()), "e2", "c2", "call.started"),
    ]
    response = await client.post("/recordCallEvents", json={"events": events}, headers=stranger)
    assert response.status_code == 200, response.text
    foreign, missing = response.json()["data"]["results"]
    assert foreign["status"] == "rejected" and foreign["error"] == "NOT_FOUND"
    assert {k: v for k, v in foreign.items() if k not in ("index", "event_id")} == {
        k: v for k, v in missing.items() if k not in ("index", "event_id")
    }
    stats = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert (stats["calls_in_progress"], stats["calls_pending"], stats["started_at"]) == (0, 1, None)


async def test_unknown_route_and_method_are_enveloped(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """An unknown route is a 404 and a wrong method a 405, both in the envelope."""
    assert_error(await client.get("/nope", headers=auth), 404, "NOT_FOUND")
    assert_error(await client.post("/getCampaignStat", headers=auth), 404, "NOT_FOUND")
    assert_error(await client.get("/createCampaign", headers=auth), 405, "METHOD_NOT_ALLOWED")
    assert_error(
        await client.post(f"/getCampaignStats/{uuid.uuid4()}", headers=auth), 405, "METHOD_NOT_ALLOWED"
    )


# 409 CONFLICT


async def test_event_id_reused_with_another_body_is_a_conflict(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The same event_id again is a duplicate; with a different body it is a 409-class conflict."""
    campaign_id = await campaign_with_contact(client, auth)
    first = call_event(campaign_id, "e1", "c1", "call.started")
    changed = call_event(campaign_id, "e1", "c2", "call.started")
    response = await client.post("/recordCallEvents", json={"events": [first, first, changed]}, headers=auth)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [r["status"] for r in data["results"]] == ["applied", "duplicate", "rejected"]
    assert data["results"][2]["error"] == "CONFLICT"
    assert "event_id" in data["results"][2]["reason"]
    assert (data["applied"], data["duplicate"], data["rejected"]) == (1, 1, 1)


async def test_event_ids_are_per_account(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """Another account using the same event_id is no conflict: ids do not leak across tenants."""
    mine = await campaign_with_contact(client, auth)
    theirs_auth = {"x-api-key": make_key("globex")}
    theirs = await campaign_with_contact(client, theirs_auth)
    for headers, campaign_id in ((auth, mine), (theirs_auth, theirs)):
        body = {"events": [call_event(campaign_id, "shared-id", "c1", "call.started")]}
        response = await client.post("/recordCallEvents", json=body, headers=headers)
        assert response.json()["data"]["results"][0]["status"] == "applied", response.text


async def test_second_live_call_is_a_conflict(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """A contact with a live call cannot start another; the refused call changes nothing."""
    campaign_id = await campaign_with_contact(client, auth)
    events = [
        call_event(campaign_id, "e1", "c1", "call.started"),
        call_event(campaign_id, "e2", "c2", "call.started"),
    ]
    response = await client.post("/recordCallEvents", json={"events": events}, headers=auth)
    assert response.status_code == 200, response.text
    second = response.json()["data"]["results"][1]
    assert (second["status"], second["error"]) == ("rejected", "CONFLICT")
    stats = (await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)).json()["data"]
    assert (stats["calls_in_progress"], stats["calls_pending"]) == (1, 0)


# 413 PAYLOAD_TOO_LARGE


async def test_body_over_the_limit_is_413(database_url: str) -> None:
    """A body over max_body_bytes is refused, declared or streamed, and nothing is stored."""
    async with serving(Settings(database_url=database_url, max_body_bytes=1000)) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme").plaintext}
        campaign_id = await new_campaign(http, auth)
        contacts = [{"phone": f"+1415555{n:04d}"} for n in range(100)]
        declared = await http.post(f"/addContacts/{campaign_id}", json={"contacts": contacts}, headers=auth)
        assert_error(declared, 413, "PAYLOAD_TOO_LARGE")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"contacts": ['
            for n in range(100):
                yield b'{"phone": "+1415555%04d"},' % n
            yield b'{"phone": "+14155559999"}]}'

        streamed = await http.post(f"/addContacts/{campaign_id}", content=chunks(), headers=auth)
        assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")
        big_name = await http.post("/createCampaign", json={"name": "x", "pad": "y" * 2000}, headers=auth)
        assert_error(big_name, 413, "PAYLOAD_TOO_LARGE")
        small = await http.post(f"/addContacts/{campaign_id}", json={"contacts": contacts[:3]}, headers=auth)
        assert small.status_code == 200, small.text
        campaign = (await http.get(f"/getCampaign/{campaign_id}", headers=auth)).json()["data"]
        assert campaign["total_contacts"] == 3


# 429 RATE_LIMITED


async def test_over_the_rate_limit_is_429_with_retry_after(database_url: str) -> None:
    """Past the stats limit the answer is a 429 envelope with Retry-After."""
    async with serving(Settings(database_url=database_url, stats_rate_limit="2/minute")) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme").plaintext}
        campaign_id = await new_campaign(http, auth)
        statuses = [
            (await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)).status_code for _ in range(2)
        ]
        assert statuses == [200, 200]
        limited = await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)
        assert_error(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["retry-after"]) <= 60


# 500 INTERNAL_SERVER_ERROR


@pytest.fixture
def private_database_url(database_url: str) -> Iterator[str]:
    """A migrated database no other test shares (a new PostgreSQL database, or the test's SQLite copy)."""
    if is_sqlite(database_url):
        yield database_url
        return
    name = f"callstats_private_{uuid.uuid4().hex[:12]}"
    admin = create_engine(sqlalchemy_url(database_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    private = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(private)
        yield private
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@asynccontextmanager
async def broken_counters(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], str]]:
    """An app whose campaign_counters table was dropped after a campaign was created."""
    async with serving(Settings(database_url=database_url)) as (app, http):
        auth = {"x-api-key": create_key(app.db, "acme").plaintext}
        campaign_id = await new_campaign(http, auth)
        app.db.dispose()
        engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE campaign_counters"))
        engine.dispose()
        yield http, auth, campaign_id


async def test_unexpected_database_failure_on_stats_leaks_nothing(private_database_url: str) -> None:
    """A query failing for an unexpected reason shows no SQL, table name or stack trace."""
    async with broken_counters(private_database_url) as (http, auth, campaign_id):
        response = await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)
        assert response.status_code >= 500
        assert_error(response, response.status_code, response.json()["error"])


async def test_unexpected_database_failure_on_stats_is_500(private_database_url: str) -> None:
    """The stats route answers an unexpected failure with the seed's 500 message."""
    async with broken_counters(private_database_url) as (http, auth, campaign_id):
        response = await http.get(f"/getCampaignStats/{campaign_id}", headers=auth)
        assert_error(response, 500, "INTERNAL_SERVER_ERROR")
        assert response.json()["message"] == "Failed to retrieve campaign statistics"
        assert "retry-after" not in response.headers


async def test_unexpected_database_failure_elsewhere_is_500(private_database_url: str) -> None:
    """Other routes answer an unexpected failure with a generic 500, no internals."""
    async with broken_counters(private_database_url) as (http, auth, campaign_id):
        for path in (f"/getCampaign/{campaign_id}", "/getCampaigns"):
            assert_error(await http.get(path, headers=auth), 500, "INTERNAL_SERVER_ERROR")


# 503 SERVICE_UNAVAILABLE


async def test_unreachable_database_is_503_with_retry_after() -> None:
    """With the database down, /ready and every framework data route say 503 and when to retry."""
    campaign_id = str(uuid.uuid4())
    async with serving(Settings(database_url=UNREACHABLE_DATABASE_URL)) as (_app, http):
        headers = {"x-api-key": keys.generate().plaintext}
        routes = [("GET", "/ready", {}), *all_routes(campaign_id)]
        for method, path, kwargs in routes:
            if path.startswith("/getCampaignStats/"):
                continue  # the hot path has its own test below
            response = await http.request(method, path, headers=headers, **kwargs)
            assert_error(response, 503, "SERVICE_UNAVAILABLE")
            assert int(response.headers["retry-after"]) >= 1, path
        health = await http.get("/health")
        assert health.status_code == 200


async def test_unreachable_database_on_stats_is_503() -> None:
    """The stats route too says 503 with Retry-After when the database is down."""
    async with serving(Settings(database_url=UNREACHABLE_DATABASE_URL)) as (_app, http):
        headers = {"x-api-key": keys.generate().plaintext}
        response = await http.get(f"/getCampaignStats/{uuid.uuid4()}", headers=headers)
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert int(response.headers["retry-after"]) >= 1


async def test_mistyped_key_is_refused_before_any_database_lookup() -> None:
    """The checksum rejects a mistyped key with 401 even when the database is down."""
    async with serving(Settings(database_url=UNREACHABLE_DATABASE_URL)) as (_app, http):
        headers = {"x-api-key": mistyped(keys.generate().plaintext)}
        for method, path, kwargs in all_routes(str(uuid.uuid4())):
            assert_error(await http.request(method, path, headers=headers, **kwargs), 401, "UNAUTHORIZED")


# One mapper: the framework's handlers and the hot endpoints alike (web.as_api_error)


class _Records(logging.Handler):
    """Every record of the logger it is added to."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_one_mapper_for_every_kind_of_exception() -> None:
    """An ApiError as it is; the framework's invalid input and HTTP errors in the envelope."""
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    conflict = Conflict("taken")
    assert as_api_error(conflict, scope) is conflict
    invalid = RequestValidationError([{"type": "missing", "loc": ("query", "n"), "msg": "Field required"}])
    assert rendered(as_api_error(invalid, scope)) == (
        400,
        {},
        {"success": False, "message": "query.n: Field required", "error": "VALIDATION_ERROR"},
    )
    missing = as_api_error(StarletteHTTPException(404), scope)
    assert (type(missing), missing.message) == (NotFound, "No such route")
    wrong = as_api_error(StarletteHTTPException(405, headers={"Allow": "POST, GET"}), scope)
    assert (wrong.status, wrong.headers) == (405, {"Allow": "GET, POST"})


@pytest.mark.parametrize(
    ("unexpected", "message"),
    [(InternalError, "Internal server error"), (StatsFailed, "Failed to retrieve campaign statistics")],
)
def test_one_mapper_logs_an_unexpected_error_once_without_its_message(
    unexpected: type[InternalError], message: str
) -> None:
    """Anything else is the route's 500 class, naming the request id of its one log line; the
    exception's message (which may carry SQL or a secret) is neither answered nor logged."""
    secret = "postgresql://admin:hunter2@db/prod"
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    records = _Records()
    logs.log.addHandler(records)
    try:
        status, headers, body = rendered(as_api_error(RuntimeError(secret), scope, unexpected))
    finally:
        logs.log.removeHandler(records)
    assert (status, body) == (500, {"success": False, "message": message, "error": "INTERNAL_SERVER_ERROR"})
    assert headers == {"X-Request-Id": request_id(scope)}
    [record] = records.records
    assert record.getMessage() == "unexpected_error" and vars(record)["request_id"] == request_id(scope)
    assert secret not in str(vars(record))
