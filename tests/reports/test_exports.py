"""exportContacts and exportCalls: the same rows as the pages, as CSV a spreadsheet opens safely and as
NDJSON, and one snapshot while events keep being written."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable
from typing import Literal, get_args, get_origin

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from callstats.app import CallstatsApp
from callstats.db.schema import campaigns
from callstats.reports import service
from callstats.reports.queries import CallFilter, ContactFilter
from callstats.reports.schemas import SPREADSHEET_PLAIN, Call, Contact
from tests.conftest import new_campaign
from tests.envelope import assert_error
from tests.factories import add
from tests.oracle import OUTCOMES, DrawChooser, SeededChoices
from tests.reports.helpers import (
    STATES,
    all_pages,
    api_contact_view,
    as_csv_text,
    call_view,
    contact_view,
    csv_records,
    ndjson_records,
    random_campaign,
)

EXAMPLES = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@EXAMPLES
@given(data=st.data())
async def test_exports_equal_the_concatenated_pages(
    client: httpx.AsyncClient, auth: dict[str, str], data: st.DataObject
) -> None:
    """For a random campaign and filter, both formats of both exports hold exactly the pages' rows."""
    chooser = DrawChooser(data)
    numbers = data.draw(st.lists(st.integers(0, 998), min_size=1, max_size=10, unique=True))
    campaign = await random_campaign(client, auth, chooser, numbers)
    await campaign.deliver(client, auth, len(campaign.requests))
    cid = campaign.campaign_id
    where = data.draw(
        st.sampled_from([{}, *({"state": s} for s in STATES), *({"last_outcome": o} for o in OUTCOMES)])
    )
    ranges = data.draw(st.sampled_from([{}, {"outcome": "busy"}, {"from": "2024-01-16T10:30:00Z"}]))
    for kind, route, params in (("Contacts", "getContacts", where), ("Calls", "getCalls", ranges)):
        pages = await all_pages(client, auth, f"/{route}/{cid}", params, chooser.integer(1, 4))
        for fmt in ("csv", "ndjson"):
            response = await client.get(
                f"/export{kind}/{cid}", params={**params, "format": fmt}, headers=auth
            )
            assert response.status_code == 200, response.text
            name = f"campaign-{cid}-{kind.lower()}.{fmt}"
            assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
            if fmt == "ndjson":
                assert response.headers["content-type"] == "application/x-ndjson"
                assert ndjson_records(response.content) == pages
            else:
                assert response.headers["content-type"] == "text/csv; charset=utf-8"
                assert csv_records(response.content) == [as_csv_text(row) for row in pages]


@pytest.mark.parametrize("model", [Contact, Call])
def test_fields_written_unguarded_hold_only_integers_words_or_times(model: type[Contact | Call]) -> None:
    """A CSV cell skips the formula guard only for a field typed int or Literal (with null), or a time
    (`*_at`, ISO 8601, starting with a digit); phone, name, metadata, call_id, raw_outcome are guarded."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        kinds = (annotation,) if get_origin(annotation) is Literal else get_args(annotation) or (annotation,)
        plain = all(kind in (int, type(None)) or get_origin(kind) is Literal for kind in kinds)
        assert (name in SPREADSHEET_PLAIN) == (plain or name.endswith("_at")), name


async def test_csv_opens_safely_in_a_spreadsheet(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Header row, BOM, phones behind a `'` (text, not a number or formula), names that look like formulas
    guarded, quotes, commas, newlines and non-ASCII kept, metadata one JSON cell; parsing gives them back."""
    campaign_id = await new_campaign(client, auth)
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", 'Zoë, "the"\nsecond line', "plain"]
    contacts = [
        {"phone": f"+1415555040{i}", "name": name, "metadata": {"note": name, "n": i}}
        for i, name in enumerate(hostile)
    ]
    await add(client, auth, campaign_id, json={"contacts": contacts})
    response = await client.get(f"/exportContacts/{campaign_id}", headers=auth)
    assert response.status_code == 200
    raw = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert raw[0] == ["contact_id", "phone", "name", "metadata", "state", "attempts", "last_outcome",
                      "last_call_at", "created_at", "erased_at"]  # fmt: skip
    cells = [cell for row in raw[1:] for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], "no cell a spreadsheet evaluates"
    assert [row[1] for row in raw[1:]] == [f"'+1415555040{i}" for i in range(len(hostile))]
    parsed = csv_records(response.content)
    assert [row["name"] for row in parsed] == hostile
    assert [row["metadata"] for row in parsed] == [
        as_csv_text({"m": {"note": name, "n": i}})["m"] for i, name in enumerate(hostile)
    ]


async def test_export_refusals_come_before_the_file(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: Callable[..., str]
) -> None:
    """Unknown campaign (or another account's), unknown format or filter: the error envelope, no file."""
    campaign_id = await new_campaign(client, auth)
    for path, params, status, code in (
        (f"/exportContacts/{campaign_id}", {"format": "xlsx"}, 400, "VALIDATION_ERROR"),
        (f"/exportContacts/{campaign_id}", {"state": "gone"}, 400, "VALIDATION_ERROR"),
        (f"/exportContacts/{campaign_id}", {"phone": "12"}, 400, "VALIDATION_ERROR"),
        (f"/exportCalls/{campaign_id}", {"to": "never"}, 400, "VALIDATION_ERROR"),
        ("/exportCalls/00000000-0000-4000-8000-000000000000", {}, 404, "NOT_FOUND"),
        ("/exportContacts/00000000-0000-4000-8000-000000000000", {}, 404, "NOT_FOUND"),
    ):
        response = await client.get(path, params=params, headers=auth)
        assert_error(response, status, code)
        assert "content-disposition" not in response.headers
    other = {"x-api-key": make_key("globex", "read")}
    for kind in ("Contacts", "Calls"):
        assert_error(await client.get(f"/export{kind}/{campaign_id}", headers=other), 404, "NOT_FOUND")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_an_export_during_ingestion_is_one_moment(
    client: httpx.AsyncClient, auth: dict[str, str], app: CallstatsApp, seed: int
) -> None:
    """Events written between the export's chunks (3 rows each): the file is the campaign as it was when
    the export began, row for row (the oracle's view then) and count for count (the stats read then),
    though the campaign moved on before the file ended."""
    chooser = SeededChoices(seed)
    campaign = await random_campaign(client, auth, chooser, list(range(seed, 60, 2)))
    await campaign.deliver(client, auth, len(campaign.requests) // 3)
    cid = campaign.campaign_id
    then = contact_view(campaign.oracle)
    stats = (await client.get(f"/getCampaignStats/{cid}", headers=auth)).json()["data"]
    calls_then = [call[0] for call in call_view(campaign.oracle, campaign.prefix)]
    account = _account_of(app, cid)
    contacts = service.export_contacts(app.db, account, cid, ContactFilter(), "ndjson", chunk_rows=3)
    calls = service.export_calls(app.db, account, cid, CallFilter(), "csv", chunk_rows=3)
    contact_bytes, call_bytes = [next(contacts.chunks)], [next(calls.chunks)]
    while True:
        await campaign.deliver(client, auth, 2)
        got = [next(contacts.chunks, None), next(calls.chunks, None)]
        contact_bytes += [got[0]] if got[0] is not None else []
        call_bytes += [got[1]] if got[1] is not None else []
        if got == [None, None]:
            break
    assert contact_view(campaign.oracle) != then, "the campaign moved on during the export"
    exported = ndjson_records(b"".join(contact_bytes))
    assert api_contact_view(exported) == then
    by_state = Counter(row["state"] for row in exported)
    assert {s: by_state[s] for s in STATES} == {s: stats[f"calls_{s}"] for s in STATES}
    by_outcome = Counter(row["last_outcome"] for row in exported if row["last_outcome"])
    assert {o: by_outcome[o] for o in OUTCOMES} == stats["call_status_breakdown"]
    assert [row["call_id"] for row in csv_records(b"".join(call_bytes))] == calls_then


def _account_of(app: CallstatsApp, campaign_id: str) -> str:
    """The account that owns a campaign, read from the database."""
    with app.db.read() as conn:
        account: str = conn.execute(
            select(campaigns.c.account_id).where(campaigns.c.id == campaign_id)
        ).scalar_one()
    return account
