"""The stats read under concurrency: reads batched together still each get their own, fresh answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import psycopg

from callstats.accounts import keys
from callstats.accounts.service import create_key, revoke_key
from callstats.app import CallstatsApp
from callstats.db.engine import Database
from callstats.stats.readers import PostgresStatsReader
from tests.conftest import new_campaign


async def test_concurrent_reads_each_get_their_own_answer(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """Reads of several campaigns with good, foreign, unknown and revoked keys, all at once."""
    first = await new_campaign(client, auth, name="first")
    second = await new_campaign(client, auth, name="second")
    await client.post(f"/addContacts/{second}", json={"contacts": [{"phone": "+14155550100"}]}, headers=auth)
    revoked = create_key(app.db, "acme")
    revoke_key(app.db, revoked.key_id)
    cases = [
        (auth, first, 200, ("first", 0)),
        (auth, second, 200, ("second", 1)),
        ({"x-api-key": make_key("acme", "read")}, second, 200, ("second", 1)),
        ({"x-api-key": make_key("globex")}, first, 404, None),
        ({"x-api-key": keys.generate().plaintext}, first, 401, None),
        ({"x-api-key": revoked.plaintext}, second, 401, None),
    ] * 6
    answers = await asyncio.gather(
        *(client.get(f"/getCampaignStats/{campaign}", headers=headers) for headers, campaign, _, _ in cases)
    )
    for (_, campaign, status, expected), answer in zip(cases, answers, strict=True):
        assert answer.status_code == status, answer.text
        if expected is not None:
            data = answer.json()["data"]
            assert (data["campaign_id"], data["campaign_name"], data["total_contacts"]) == (
                campaign,
                *expected,
            )


async def test_reads_after_a_write_all_see_it(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Every read started after addContacts was acknowledged counts the new contacts, however many at once."""
    campaign_id = await new_campaign(client, auth)
    for n in range(1, 4):
        added = await client.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": f"+1415555010{n}"}]}, headers=auth
        )
        assert added.status_code < 300, added.text
        reads = await asyncio.gather(
            *(client.get(f"/getCampaignStats/{campaign_id}", headers=auth) for _ in range(8))
        )
        assert [r.json()["data"]["total_contacts"] for r in reads] == [n] * 8


async def test_unreachable_postgres_fails_every_waiting_read() -> None:
    """A batch that cannot reach PostgreSQL fails each of its reads with the driver's error (a 503)."""
    reader = PostgresStatsReader(Database("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1))
    try:
        results = await asyncio.gather(
            *(reader.read("k" * 12, "c") for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, psycopg.OperationalError) for r in results), results
    finally:
        await reader.aclose()
        reader.db.dispose()
