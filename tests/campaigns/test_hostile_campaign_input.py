"""Issue 8, hostile input on the campaign routes: deep nesting, coerced integers, NUL characters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.pool import NullPool

from callstats.app import CallstatsApp
from callstats.config import is_sqlite, sqlalchemy_url
from callstats.db import migrate
from callstats.db.schema import contacts
from tests.conftest import new_campaign

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


def assert_validation_error(response: httpx.Response) -> str:
    """The message of a 400 VALIDATION_ERROR in the seed's envelope."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"success", "message", "error"}
    assert body["success"] is False and body["error"] == "VALIDATION_ERROR"
    message: str = body["message"]
    return message


def stored_phones(app: CallstatsApp, campaign_id: str) -> list[str]:
    """The campaign's contact identities, sorted."""
    query = select(contacts.c.phone).where(contacts.c.campaign_id == campaign_id)
    with app.db.read() as conn:
        return sorted(conn.execute(query).scalars())


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, b'{"name": "x"', b"\xff\xfe{", b"", b"null", b"[]"])
async def test_create_campaign_bodies_that_are_not_usable_are_400(
    client: httpx.AsyncClient, auth: dict[str, str], body: bytes
) -> None:
    """100,000 levels deep, truncated, not text, empty, not an object: 400 VALIDATION_ERROR, never 500."""
    response = await client.post(
        "/createCampaign", content=body, headers={**auth, "content-type": "application/json"}
    )
    assert_validation_error(response)
    listed = await client.get("/getCampaigns", headers=auth)
    assert listed.json()["data"] == []


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT, b'{"contacts": ' + DEEP + b"}"])
async def test_add_contacts_deep_bodies_are_400(
    client: httpx.AsyncClient, auth: dict[str, str], body: bytes
) -> None:
    """A body nested 100,000 deep is a 400 VALIDATION_ERROR on addContacts."""
    campaign_id = await new_campaign(client, auth)
    response = await client.post(
        f"/addContacts/{campaign_id}", content=body, headers={**auth, "content-type": "application/json"}
    )
    assert "deeper" in assert_validation_error(response)


@pytest.mark.parametrize("depth", [33, 500, 987, 1_020])
async def test_deep_metadata_refuses_its_row_only(
    client: httpx.AsyncClient, auth: dict[str, str], depth: int
) -> None:
    """Metadata nested past 32 levels (but inside the body's 1,024): that row is invalid with a reason,
    its neighbour is added (it once was a RecursionError 500 that lost the whole batch)."""
    campaign_id = await new_campaign(client, auth)
    deep = '{"a":' * depth + "1" + "}" * depth
    body = f'{{"contacts":[{{"phone":"+14155558888"}},{{"phone":"+14155558887","metadata":{deep}}}]}}'
    response = await client.post(
        f"/addContacts/{campaign_id}", content=body, headers={**auth, "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["accepted"], data["invalid"]) == (1, 1)
    assert data["errors"] == [
        {"row": 2, "phone": "+14155558887", "reason": "metadata nests deeper than 32 levels"}
    ]


async def test_metadata_32_levels_deep_is_stored(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """The limit's edge: 32 levels are kept."""
    campaign_id = await new_campaign(client, auth)
    metadata: Any = 1
    for _ in range(32):
        metadata = {"a": metadata}
    contact = {"phone": "+14155558888", "metadata": metadata}
    response = await client.post(f"/addContacts/{campaign_id}", json={"contacts": [contact]}, headers=auth)
    assert response.json()["data"]["accepted"] == 1, response.text


@pytest.mark.parametrize("value", [True, False, 2.0, "3", 3.5, None, [3], 2**63])
async def test_max_attempts_is_a_strict_integer(
    client: httpx.AsyncClient, auth: dict[str, str], value: Any
) -> None:
    """No boolean, float, string or null passes as max_attempts (true was stored as 1)."""
    response = await client.post("/createCampaign", json={"name": "x", "max_attempts": value}, headers=auth)
    assert "max_attempts" in assert_validation_error(response)


@pytest.mark.parametrize("value", [1, 3, 100])
async def test_max_attempts_integers_still_pass(
    client: httpx.AsyncClient, auth: dict[str, str], value: int
) -> None:
    """A JSON integer in range is kept."""
    response = await client.post("/createCampaign", json={"name": "x", "max_attempts": value}, headers=auth)
    assert response.status_code == 201 and response.json()["data"]["max_attempts"] == value


@pytest.mark.parametrize("name", ["\u0000", "Q4\u0000Sales", "Q4 Sales\u0000"])
async def test_nul_in_a_campaign_name_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], name: str
) -> None:
    """PostgreSQL cannot store NUL, so the name is refused on every backend."""
    response = await client.post("/createCampaign", json={"name": name}, headers=auth)
    assert "NUL" in assert_validation_error(response)


async def test_create_campaign_keeps_its_other_400s(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Unknown fields, a blank name and a non-retryable outcome are still refused by field."""
    for body, field in [
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "  "}, "name"),
        ({"name": "x", "retry_on": ["answered"]}, "retry_on"),
        ({}, "name"),
    ]:
        response = await client.post("/createCampaign", json=body, headers=auth)
        assert field in assert_validation_error(response)


async def test_create_campaign_without_a_key_is_401_before_the_body_is_read(
    client: httpx.AsyncClient,
) -> None:
    """Authentication comes first, even for a hostile body."""
    response = await client.post(
        "/createCampaign", content=DEEP, headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


async def test_openapi_still_describes_the_create_campaign_body(client: httpx.AsyncClient) -> None:
    """The body, read raw now, is still documented with its fields."""
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/createCampaign"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]  # the CreateCampaign model's schema
    properties = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert {"name", "max_attempts", "retry_on", "default_region"} <= set(properties)
    assert body["required"] is True
    parameters = {p["name"] for p in schema["paths"]["/addContacts/{campaignId}"]["post"]["parameters"]}
    assert {"region", "phone_column"} <= parameters


@pytest.mark.parametrize(
    ("contact", "field"),
    [
        ({"phone": "+1415555\u00000199"}, "phone"),
        ({"phone": "+14155550199\u0000"}, "phone"),
        ({"phone": "+14155550199", "name": "Ann\u0000"}, "name"),
        ({"phone": "+14155550199", "metadata": {"tier": "gold\u0000"}}, "metadata"),
        ({"phone": "+14155550199", "metadata": {"ti\u0000er": "gold"}}, "metadata"),
        ({"phone": "+14155550199", "metadata": {"deep": [{"x": ["\u0000"]}]}}, "metadata"),
    ],
)
async def test_nul_in_a_contact_refuses_that_row_only(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], contact: dict[str, Any], field: str
) -> None:
    """The row is invalid with a reason naming the field and NUL; its neighbours are added (was a 500)."""
    campaign_id = await new_campaign(client, auth)
    body = {"contacts": [{"phone": "+14155550101"}, contact, {"phone": "+14155550102"}]}
    response = await client.post(f"/addContacts/{campaign_id}", json=body, headers=auth)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["received"], data["accepted"], data["invalid"]) == (3, 2, 1)
    [error] = data["errors"]
    assert error["row"] == 2 and field in error["reason"] and "NUL" in error["reason"]
    assert stored_phones(app, campaign_id) == ["+14155550101", "+14155550102"]


@pytest.mark.parametrize("column", [1, 2, 3])
async def test_nul_in_a_csv_cell_refuses_that_row_only(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], column: int
) -> None:
    """A NUL in any cell (phone, name, metadata) of a CSV row: that row invalid, naming the column."""
    campaign_id = await new_campaign(client, auth)
    cells = ["+14155550199", "Ann", "gold"]
    cells[column - 1] = cells[column - 1][:2] + "\x00" + cells[column - 1][2:]
    body = f"phone,name,tier\n+14155550101,Bo,x\n{','.join(cells)}\n+14155550102,Cy,y\n".encode()
    response = await client.post(
        f"/addContacts/{campaign_id}", content=body, headers={**auth, "content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["accepted"], data["invalid"]) == (2, 1)
    assert data["errors"][0]["row"] == 2 and f"column {column}" in data["errors"][0]["reason"]
    assert stored_phones(app, campaign_id) == ["+14155550101", "+14155550102"]


async def test_concurrent_uploads_of_one_list_name_every_skipped_row_as_already_there(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Four requests race with the same 300 phones: each phone is accepted once in all; every other
    row of every answer is a duplicate with earlier_row null (a concurrent request inserted it)."""
    campaign_id = await new_campaign(client, auth)
    phones = [f"+1415555{n:04d}" for n in range(300)]
    body = {"contacts": [{"phone": phone} for phone in phones]}
    answers = await asyncio.gather(
        *(client.post(f"/addContacts/{campaign_id}", json=body, headers=auth) for _ in range(4))
    )
    datas = [answer.json()["data"] for answer in answers]
    assert sum(data["accepted"] for data in datas) == 300
    for data in datas:
        assert data["accepted"] + data["duplicate"] == 300
        assert len(data["duplicates"]) == data["duplicate"]
        assert all(
            d["earlier_row"] is None and d["phone"] == phones[d["row"] - 1] for d in data["duplicates"]
        )


# Migration 0003 on a database that already holds campaigns and contacts.


@pytest.fixture
def database_at_0002(database_url: str, tmp_path: Any) -> Iterator[str]:
    """An empty database migrated to revision 0002 only (a private one on PostgreSQL)."""
    from alembic import command

    if is_sqlite(database_url):
        url = f"sqlite:///{tmp_path / 'at_0002.db'}"
        command.upgrade(migrate.alembic_config(url), "0002")
        yield url
        return
    name = f"callstats_0002_{uuid.uuid4().hex[:12]}"
    admin = create_engine(sqlalchemy_url(database_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(sqlalchemy_url(database_url)).set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(migrate.alembic_config(url), "0002")
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migration_0003_gives_existing_campaigns_the_server_region_and_room_for_extensions(
    database_at_0002: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Existing campaigns take CALLSTATS_DEFAULT_REGION (their numbers were read in it); new ones must
    name a region; contacts.phone holds an identity with a long extension on both backends."""
    engine = create_engine(sqlalchemy_url(database_at_0002), poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts VALUES ('a', 'acme', 1)"))
        conn.execute(
            text(
                "INSERT INTO campaigns (id, account_id, name, max_attempts, retry_on, created_at) "
                "VALUES ('c1', 'a', 'old', 3, 'busy', 1)"
            )
        )
    monkeypatch.setenv("CALLSTATS_DEFAULT_REGION", "gb")
    migrate.upgrade(database_at_0002)
    long_identity = "+8613912345678;ext=12345678901234567890"
    with engine.begin() as conn:
        assert conn.execute(text("SELECT id, default_region FROM campaigns")).all() == [("c1", "GB")]
        conn.execute(
            text(
                "INSERT INTO contacts (campaign_id, account_id, phone, state, attempts, created_at) "
                "VALUES ('c1', 'a', :phone, 'pending', 0, 1)"
            ),
            {"phone": long_identity},
        )
        assert conn.execute(text("SELECT phone FROM contacts")).scalar_one() == long_identity
    engine.dispose()


def test_phones_json_round_trip() -> None:
    """The identity strings used above are what normalize gives (the contract the events route relies on)."""
    from callstats.core.phones import normalize

    assert normalize("+86 139 1234 5678 ext. 12345678901234567890", "US") == (
        "+8613912345678;ext=12345678901234567890"
    )
    assert json.loads(json.dumps(normalize("608-555-0147 x12", "US"))) == "+16085550147;ext=12"
