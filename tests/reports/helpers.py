"""Shared by the drill-down and export tests: random campaigns fed to the API and the oracle at once,
every page of a list, and what the oracle (tests/oracle.py, never the code) says each list holds."""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.agreement import add_contacts, post_events
from tests.conftest import new_campaign
from tests.oracle import (
    BASE_MS,
    RETRYABLE,
    CampaignOracle,
    Chooser,
    Event,
    Rules,
    batches,
    epoch_ms,
    interleave,
    perturb,
    phone_of,
    simulate_contact,
    with_phone_forms,
    written_forms,
)

STATES = ("pending", "in_progress", "completed", "failed")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Campaign:
    """A campaign made through the API with its oracle, and the event requests not yet delivered."""

    campaign_id: str
    prefix: str
    oracle: CampaignOracle
    requests: list[list[Event]] = field(default_factory=list)

    async def deliver(self, client: httpx.AsyncClient, auth: dict[str, str], count: int = 1) -> None:
        """Send the next `count` requests; the API's verdict on each event is the oracle's."""
        for _ in range(min(count, len(self.requests))):
            request = self.requests.pop(0)
            got = await post_events(client, auth, self.campaign_id, self.prefix, request)
            assert got == [self.oracle.deliver(e) for e in request]


async def random_campaign(
    client: httpx.AsyncClient, auth: dict[str, str], chooser: Chooser, numbers: list[int]
) -> Campaign:
    """A campaign with random retry rules and the contacts `numbers` (0..998), and a perturbed random
    stream of their calls cut into requests (none delivered yet)."""
    rules = Rules(chooser.integer(1, 4), frozenset(o for o in RETRYABLE if chooser.integer(0, 3)))
    campaign_id = await new_campaign(
        client, auth, max_attempts=rules.max_attempts, retry_on=sorted(rules.retry_on)
    )
    oracle = CampaignOracle(rules.max_attempts, rules.retry_on)
    await add_contacts(client, auth, campaign_id, [phone_of(n) for n in numbers], oracle)
    phones = [phone_of(n) for n in numbers]
    streams = [
        simulate_contact(chooser, f"k{i}", phone, rules, BASE_MS + chooser.integer(0, 3_600_000))
        for i, phone in enumerate(phones)
    ]
    forms = {phone_of(n): written_forms(n) for n in numbers}
    stream = perturb(chooser, with_phone_forms(chooser, interleave(chooser, streams), forms), phones, 3)
    return Campaign(campaign_id, f"{uuid.uuid4().hex[:12]}:", oracle, batches(chooser, stream, 8))


async def page_of(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a list route: its rows and next cursor (200 asserted)."""
    response = await client.get(path, params=params, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["pagination"]["limit"] == params.get("limit", 100)
    return body["data"], body["pagination"]["next_cursor"]


async def all_pages(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, params: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """Every row of a list route, page by page of `limit` rows."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = await page_of(
            client, auth, path, {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        )
        assert len(page) <= limit
        rows += page
        if cursor is None:
            return rows
        assert len(page) == limit  # only the last page may be short


def contact_view(oracle: CampaignOracle) -> dict[str, tuple[Any, ...]]:
    """Each contact as the oracle sees it: phone -> (state, attempts, last_outcome, last_call_at ms).

    The last call is the contact's latest accepted call (calls are kept in acceptance order).
    """
    latest: dict[str, int] = {}
    for call in oracle.calls.values():
        latest[call.contact] = call.started_at
    return {
        phone: (c.state, c.attempts, c.last_outcome, latest.get(phone))
        for phone, c in oracle.contacts.items()
    }


def api_contact_view(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """getContacts rows in contact_view's terms (times as epoch ms); each phone once."""
    view = {
        row["phone"]: (
            row["state"],
            row["attempts"],
            row["last_outcome"],
            None if row["last_call_at"] is None else epoch_ms(row["last_call_at"]),
        )
        for row in rows
    }
    assert len(view) == len(rows), "a contact listed twice"
    return view


def matching(view: dict[str, tuple[Any, ...]], state: str | None, last_outcome: str | None) -> set[str]:
    """The phones of contact_view whose state and last outcome match the filters given."""
    return {
        phone
        for phone, (s, _a, outcome, _at) in view.items()
        if (state is None or s == state) and (last_outcome is None or outcome == last_outcome)
    }


def call_view(oracle: CampaignOracle, prefix: str) -> list[tuple[Any, ...]]:
    """The oracle's calls as getCalls lists them, newest first: (call_id, phone, started_at ms, outcome,
    duration)."""
    rows = [
        (
            prefix + call_id,
            c.contact,
            c.started_at,
            c.outcome if c.ended else None,
            c.duration if c.ended else None,
        )
        for call_id, c in oracle.calls.items()
    ]
    return sorted(rows, key=lambda row: (row[2], row[0]), reverse=True)


def api_call_view(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """getCalls rows in call_view's terms."""
    return [
        (r["call_id"], r["phone"], epoch_ms(r["started_at"]), r["outcome"], r["duration_seconds"])
        for r in rows
    ]


def unguarded(cell: str) -> str:
    """A CSV cell as the text it stands for: the `'` put before a formula-like start taken off."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def csv_records(content: bytes) -> list[dict[str, str]]:
    """An export's CSV (BOM, header) as rows of text cells, the formula guard taken off."""
    assert content.startswith(b"\xef\xbb\xbf"), "a UTF-8 BOM for spreadsheets"
    reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline=""))
    return [{name: unguarded(value) for name, value in row.items()} for row in reader]


def as_csv_text(record: dict[str, Any]) -> dict[str, str]:
    """A JSON record's values as the CSV writes them (before the guard): null empty, objects JSON."""
    return {
        name: ""
        if value is None
        else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if isinstance(value, dict)
        else str(value)
        for name, value in record.items()
    }


def ndjson_records(content: bytes) -> list[dict[str, Any]]:
    """An NDJSON export's objects."""
    return [json.loads(line) for line in content.decode().splitlines()]
