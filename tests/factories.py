"""Factories for the tests: campaigns, contacts and call events, as request bodies and as API calls.

Event bodies are built here and nowhere else: `call_event` is the recordCallEvents item, and
`started_call`, `ended_call` and `answered_call` the usual shapes of it. The API helpers come in two
kinds: synchronous ones for a real server (`httpx.Client`, a base URL) and asynchronous ones for the
in-process app (`httpx.AsyncClient`, the test's auth headers).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import new_campaign
from tests.oracle import CampaignOracle, Rules, phone_of

AT = "2024-01-16T09:00:00Z"  # when a test's events happen unless it says otherwise
PHONE = "+14155550100"  # the contact's phone unless a test says otherwise


# -- event bodies ----------------------------------------------------------------------------------


def call_event(
    campaign_id: str,
    event_id: str,
    call_id: str,
    kind: str,
    *,
    phone: str = PHONE,
    at: str = AT,
    **extra: Any,
) -> dict[str, Any]:
    """One recordCallEvents item; `extra` adds fields (outcome, duration_seconds, ...) or replaces them."""
    return {
        "event_id": event_id,
        "campaign_id": campaign_id,
        "phone": phone,
        "call_id": call_id,
        "type": kind,
        "occurred_at": at,
        **extra,
    }


def started_call(
    campaign_id: str, phone: str, call_id: str, at: str = AT, *, event_id: str | None = None
) -> dict[str, Any]:
    """A call.started event (its id `<call_id>-started` unless given)."""
    return call_event(
        campaign_id, event_id or f"{call_id}-started", call_id, "call.started", phone=phone, at=at
    )


def ended_call(
    campaign_id: str,
    phone: str,
    call_id: str,
    outcome: str,
    seconds: int = 0,
    at: str = "2024-01-16T09:01:00Z",
    *,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A call.ended event (it also starts the call when its call.started was never seen)."""
    return call_event(
        campaign_id,
        event_id or f"{call_id}-ended",
        call_id,
        "call.ended",
        phone=phone,
        at=at,
        outcome=outcome,
        duration_seconds=seconds,
    )


def answered_call(campaign_id: str, phone: str, seconds: int) -> list[dict[str, Any]]:
    """The events of one call answered and ended after `seconds` of talk."""
    call_id = f"call-{uuid.uuid4().hex}"
    return [
        started_call(campaign_id, phone, call_id, event_id=f"{call_id}-s"),
        ended_call(
            campaign_id, phone, call_id, "answered", seconds, "2024-01-16T09:05:00Z", event_id=f"{call_id}-e"
        ),
    ]


# -- campaigns and contacts on a real server (httpx.Client) ------------------------------------------


def phones(count: int, exchange: int = 200) -> list[str]:
    """`count` distinct valid US numbers."""
    return [f"+1415{exchange}{line:04d}" for line in range(count)]


def create_campaign(http: httpx.Client, base_url: str, name: str = "scale-out") -> str:
    """A new campaign through the API."""
    response = http.post(f"{base_url}/createCampaign", json={"name": name})
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["data"]["campaign_id"]
    return campaign_id


def add_contacts(http: httpx.Client, base_url: str, campaign_id: str, phones: list[str]) -> dict[str, Any]:
    """addContacts as CSV; its answer's data."""
    body = "phone,name\n" + "".join(f"{phone},Contact {i}\n" for i, phone in enumerate(phones))
    response = http.post(
        f"{base_url}/addContacts/{campaign_id}", content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def record_events(http: httpx.Client, base_url: str, events: list[dict[str, Any]]) -> None:
    """recordCallEvents; every event must be applied."""
    response = http.post(f"{base_url}/recordCallEvents", json={"events": events})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["applied"] == len(events), response.text


def stats(http: httpx.Client, base_url: str, campaign_id: str) -> dict[str, Any]:
    """getCampaignStats' data (the request must succeed)."""
    response = http.get(f"{base_url}/getCampaignStats/{campaign_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# -- campaigns, contacts and events in process (httpx.AsyncClient on the app) ------------------------

CSV = {"content-type": "text/csv"}


async def add(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, **request: Any
) -> dict[str, Any]:
    """addContacts' 200 answer (`json=` or `content=` plus optional `headers=`)."""
    headers = {**auth, **request.pop("headers", {})}
    response = await client.post(f"/addContacts/{campaign_id}", headers=headers, **request)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    return body["data"]  # type: ignore[no-any-return]


async def total_contacts(client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str) -> int:
    """The campaign's total_contacts as getCampaignStats reports it."""
    response = await client.get(f"/getCampaignStats/{campaign_id}", headers=auth)
    assert response.status_code == 200, response.text
    total: int = response.json()["data"]["total_contacts"]
    return total


async def record(client: httpx.AsyncClient, auth: dict[str, str], *events: dict[str, Any]) -> dict[str, Any]:
    """Record events; the acknowledged (2xx) answer's data."""
    response = await client.post("/recordCallEvents", json={"events": list(events)}, headers=auth)
    assert 200 <= response.status_code < 300, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def campaign_with_contact(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    """A campaign of the key's account holding the test phone (PHONE)."""
    campaign_id = await new_campaign(client, auth)
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": PHONE}]}, headers=auth
    )
    assert added.status_code == 200, added.text
    return campaign_id


async def setup_campaign(
    client: httpx.AsyncClient, auth: dict[str, str], rules: Rules, contacts: int
) -> tuple[str, list[str], CampaignOracle]:
    """A campaign with `contacts` contacts; its id, their phones and a matching oracle."""
    campaign_id = await new_campaign(
        client, auth, max_attempts=rules.max_attempts, retry_on=sorted(rules.retry_on)
    )
    phones = [phone_of(n) for n in range(contacts)]
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in phones]}, headers=auth
    )
    assert added.status_code == 200 and added.json()["data"]["accepted"] == contacts
    oracle = CampaignOracle(rules.max_attempts, rules.retry_on)
    oracle.add_contacts(phones)
    return campaign_id, phones, oracle


# -- contact files ---------------------------------------------------------------------------------


@dataclass
class GeneratedCsv:
    """A generated contacts file and what the server must make of it."""

    path: Path
    received: int = 0
    duplicate: int = 0
    invalid_lines: list[int] = field(default_factory=list)
    repeats: dict[int, int] = field(default_factory=dict)  # a duplicate row's line -> its original's line

    @property
    def accepted(self) -> int:
        """Rows that are new, valid numbers."""
        return self.received - self.duplicate - len(self.invalid_lines)


def generate_csv(path: Path, rows: int, delimiter: str = ",", encoding: str = "utf-8") -> GeneratedCsv:
    """`rows` contacts with invalid and duplicate phones, blank lines and multi-line names."""
    made = GeneratedCsv(path)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", delimiter=delimiter)
    writer.writerow(["phone", "name", "crm_id"])
    line, valid = 2, 0
    valid_lines: list[int] = []
    for index in range(rows):
        if index % 97 == 5:
            out.write("\n")
            line += 1
        if index % 50 == 7:
            record, made.invalid_lines = ["12", f"Bad {index}", ""], [*made.invalid_lines, line]
        elif index % 50 == 19:
            record, made.invalid_lines = ["", f"Empty {index}", ""], [*made.invalid_lines, line]
        elif index % 50 == 23 and valid:
            record, made.duplicate = [_national(valid // 2), f"Again {index}", ""], made.duplicate + 1
            made.repeats[line] = valid_lines[valid // 2]
        else:
            name = f"Line one {index}\nline two" if index % 50 == 31 else f"Zoë, Contact {index}"
            record, valid = [_e164(valid), name, f"C-{index}"], valid + 1
            valid_lines.append(line)
        writer.writerow(record)
        line += 1 + record[1].count("\n")
        made.received += 1
    path.write_text(out.getvalue(), encoding=encoding)
    return made


def _e164(number: int) -> str:
    return f"+1415{200 + number // 10_000}{number % 10_000:04d}"


def _national(number: int) -> str:
    """The same number as `_e164`, as people type it: the server normalizes both alike."""
    return f"(415) {200 + number // 10_000}-{number % 10_000:04d}"
