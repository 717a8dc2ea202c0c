"""Malformed CSV is refused whole, naming the line where it broke: addContacts and `callstats import`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from callstats.app import CallstatsApp
from callstats.importer import ImportFailed, ImportOptions, check_syntax, import_csv, read_chunks
from tests.conftest import new_campaign, stored_contacts
from tests.factories import CSV, add, total_contacts

GOOD = "+14155550101,Ann\n+14155550102,Bob\n"
UNCLOSED = (
    "phone,name\n" + GOOD + '+14155550103,"Cy\n' + "".join(f"+1415555{i:04d},Row {i}\n" for i in range(200))
)
AFTER_QUOTE = "phone,name\n" + GOOD + '+14155550103,"Cy" Jr\n+14155550104,Dee\n'

MALFORMED = [
    pytest.param(
        UNCLOSED, "the row starting on line 4 opens a quoted value that is never closed", id="unclosed"
    ),
    pytest.param('phone,name\n+14155550101,"Ann', "line 2 opens a quoted value", id="unclosed-at-end"),
    pytest.param(AFTER_QUOTE, "not valid CSV on line 4: ',' expected after '\"'", id="text-after-quote"),
    pytest.param('"phone,name\n' + GOOD, "the row starting on line 1 opens a quoted value", id="header"),
    pytest.param(
        'sep=;\nphone;name\n+14155550101;Ann\n+14155550102;"Bob"x\n',
        "not valid CSV on line 4",
        id="sep-line-counted",
    ),
]


@pytest.mark.parametrize(("body", "message"), MALFORMED)
async def test_malformed_csv_is_refused_whole(
    client: httpx.AsyncClient, auth: dict[str, str], body: str, message: str
) -> None:
    """A quote never closed (which would swallow the rest of the body into one value) or text after a
    closing quote: 400 VALIDATION_ERROR naming the line, and not one row added."""
    campaign_id = await new_campaign(client, auth)
    await add(client, auth, campaign_id, content=b"phone\n+14155550199\n", headers=CSV)
    response = await client.post(
        f"/addContacts/{campaign_id}", content=body.encode(), headers={**auth, **CSV}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert message in response.json()["message"]
    assert "nothing was added" in response.json()["message"]
    assert await total_contacts(client, auth, campaign_id) == 1


async def test_a_quote_inside_an_unquoted_value_is_kept(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """`12" pizza` unquoted is read as written (as Excel and the csv module read it), not an error."""
    campaign_id = await new_campaign(client, auth)
    data = await add(client, auth, campaign_id, content=b'phone,name\n+14155550101,12" pizza\n', headers=CSV)
    assert data["accepted"] == 1
    assert stored_contacts(app, campaign_id) == {"+14155550101": ('12" pizza', None)}


async def test_a_row_longer_than_the_header_is_an_invalid_row(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Values past the header's last column (an unquoted `Smith, Jane`) make that row invalid, not the
    body; empty ones (a trailing delimiter) are ignored."""
    campaign_id = await new_campaign(client, auth)
    body = b'phone,name\n+14155550101,Smith, Jane\n+14155550102,Bob,,\n+14155550103,"Smith, Jo"\n'
    data = await add(client, auth, campaign_id, content=body, headers=CSV)
    assert (data["received"], data["accepted"], data["invalid"]) == (3, 2, 1)
    assert data["errors"] == [
        {
            "row": 1,
            "phone": "+14155550101",
            "reason": "3 values but the header has 2 columns (quote a value holding the delimiter ',')",
        }
    ]
    assert stored_contacts(app, campaign_id) == {
        "+14155550102": ("Bob", None),
        "+14155550103": ("Smith, Jo", None),
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (UNCLOSED, "the row starting on line 4 opens a quoted value that is never closed"),
        (AFTER_QUOTE, "not valid CSV on line 4: ',' expected after '\"'"),
    ],
)
def test_the_importer_names_the_file_line(tmp_path: Path, body: str, message: str) -> None:
    """`callstats import` reads the file as the server does and names the line in the file."""
    path = tmp_path / "contacts.csv"
    path.write_text(body)
    with path.open("rb") as stream, pytest.raises(ImportFailed, match=message):
        check_syntax(stream, ImportOptions())
    with path.open("rb") as stream, pytest.raises(ImportFailed, match=message):
        list(read_chunks(stream, rows_per_request=1))


def test_the_importer_sends_nothing_from_a_malformed_file(tmp_path: Path) -> None:
    """The whole file is checked before the first request: pointed at a port nobody listens on, the
    import still fails with the syntax error (a request would have failed with "cannot reach")."""
    path = tmp_path / "contacts.csv"
    path.write_text("phone,name\n" + GOOD * 3 + '+14155550103,"Cy\n')
    with pytest.raises(ImportFailed, match="line 8 opens a quoted value") as failed:
        import_csv(
            path, "00000000-0000-4000-8000-000000000000", "http://127.0.0.1:1", "key", rows_per_request=1
        )
    assert failed.value.totals is None
