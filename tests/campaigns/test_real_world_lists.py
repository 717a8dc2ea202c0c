"""Issue 8, contact lists: extensions, delimiters, header names, charsets, regions, named duplicates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from callstats.app import CallstatsApp
from tests.conftest import new_campaign, stored_contacts
from tests.factories import add

EXTENSION_FORMS = ["x11", "ext 11", "ext. 11", "-x11", ",11", ";ext=11", "X11", "EXT 11", "Ext. 11", "#11"]


async def refused(client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str, **request: Any) -> str:
    """The message of addContacts' 400 VALIDATION_ERROR answer."""
    headers = {**auth, **request.pop("headers", {})}
    response = await client.post(f"/addContacts/{campaign_id}", headers=headers, **request)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == "VALIDATION_ERROR"
    message: str = body["message"]
    return message


def csv_headers(charset: str | None = None) -> dict[str, str]:
    """A text/csv Content-Type, with a charset parameter when given."""
    return {"content-type": "text/csv" + (f"; charset={charset}" if charset else "")}


# --- 1. extensions --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", EXTENSION_FORMS)
async def test_every_extension_form_is_kept_and_two_extensions_are_two_contacts(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], form: str
) -> None:
    """`608-555-0147 <form>` and `... x12` are two contacts; the plain number is a third."""
    campaign_id = await new_campaign(client, auth)
    body = f'phone\n"608-555-0147 {form}"\n608-555-0147 x12\n6085550147\n+16085550147;ext=12\n'
    data = await add(client, auth, campaign_id, content=body.encode(), headers=csv_headers())
    assert (data["received"], data["accepted"], data["duplicate"], data["invalid"]) == (4, 3, 1, 0)
    assert sorted(stored_contacts(app, campaign_id)) == [
        "+16085550147",
        "+16085550147;ext=11",
        "+16085550147;ext=12",
    ]
    assert data["duplicates"] == [{"row": 4, "phone": "+16085550147;ext=12", "earlier_row": 2}]


@pytest.mark.parametrize("form", EXTENSION_FORMS)
async def test_extensions_in_json_bodies(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], form: str
) -> None:
    """The same forms sent as JSON strings."""
    campaign_id = await new_campaign(client, auth)
    body = {"contacts": [{"phone": f"608-555-0147{form}"}, {"phone": "608-555-0147 x12"}]}
    data = await add(client, auth, campaign_id, json=body)
    assert (data["accepted"], data["duplicate"]) == (2, 0)
    assert sorted(stored_contacts(app, campaign_id)) == ["+16085550147;ext=11", "+16085550147;ext=12"]


async def test_the_longest_extension_fits_the_column(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """A 15-digit number with a long extension is stored whole on both backends (the column was 20)."""
    campaign_id = await new_campaign(client, auth)
    phone = "+8613912345678 ext. 1234567890123456"
    data = await add(client, auth, campaign_id, json={"contacts": [{"phone": phone}]})
    assert data["accepted"] == 1, data
    assert list(stored_contacts(app, campaign_id)) == ["+8613912345678;ext=1234567890123456"]


# --- 2. delimiters and header names ---------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
async def test_every_delimiter_is_detected(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], delimiter: str
) -> None:
    """phone/name/city in any of the four delimiters; cells holding the other delimiters stay whole."""
    campaign_id = await new_campaign(client, auth)
    lines = [
        ["phone", "name", "city"],
        ["+14155550101", '"Smith, Jane; Dr."', "Oakland|CA"],
        ["4155550102", "Bob", ""],
    ]
    if delimiter == "|":
        lines[1][2] = '"Oakland|CA"'
    body = "\n".join(delimiter.join(line) for line in lines) + "\n"
    data = await add(client, auth, campaign_id, content=body.encode(), headers=csv_headers())
    assert (data["received"], data["accepted"], data["invalid"]) == (2, 2, 0), data
    assert stored_contacts(app, campaign_id) == {
        "+14155550101": ("Smith, Jane; Dr.", {"city": "Oakland|CA"}),
        "+14155550102": ("Bob", None),
    }


@pytest.mark.parametrize("hint", ["sep=;", "SEP=;", '"sep=;"'])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
async def test_an_excel_sep_line_names_the_delimiter(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], hint: str, newline: str
) -> None:
    """Excel's `sep=;` first line decides the delimiter (the header alone would say ','), and is not a row."""
    campaign_id = await new_campaign(client, auth)
    lines = [hint, "phone;name", "+14155550101;Smith, Jane", "4155550102;Bob"]
    body = newline.join(lines) + newline
    data = await add(client, auth, campaign_id, content=body.encode(), headers=csv_headers())
    assert (data["received"], data["accepted"], data["invalid"]) == (2, 2, 0), data
    assert stored_contacts(app, campaign_id) == {
        "+14155550101": ("Smith, Jane", None),
        "+14155550102": ("Bob", None),
    }


async def test_european_excel_semicolon_file_with_commas_in_cells(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """`phone;name` (European Excel's default) whose unquoted cells hold commas."""
    campaign_id = await new_campaign(client, auth, default_region="GB")
    body = "phone;name;note\r\n020 7946 0958;Smith, Jane;call after 5, not before\r\n"
    data = await add(client, auth, campaign_id, content=body.encode(), headers=csv_headers())
    assert (data["accepted"], data["invalid"]) == (1, 0), data
    assert stored_contacts(app, campaign_id) == {
        "+442079460958": ("Smith, Jane", {"note": "call after 5, not before"})
    }


@pytest.mark.parametrize(
    "header",
    [
        "phone", "Phone", "PHONE", " phone ", "phone_number", "Phone Number", "phone number", "PhoneNumber",
        "phonenumber", "phone-number", "phone_no", "mobile", "Mobile", "mobile_phone", "Mobile Phone",
        "mobile_number", "cell", "Cell Phone", "cell_number", "telephone", "Telephone Number", "tel",
        "TEL", "number", "msisdn", "MSISDN",
    ],
)  # fmt: skip
async def test_every_phone_header_name_is_accepted(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], header: str
) -> None:
    """The documented header names, in any case and spacing."""
    campaign_id = await new_campaign(client, auth)
    body = f"name,{header}\nAnn,4155550101\n"
    data = await add(client, auth, campaign_id, content=body.encode(), headers=csv_headers())
    assert data["accepted"] == 1, data
    assert stored_contacts(app, campaign_id) == {"+14155550101": ("Ann", None)}


async def test_phone_wins_over_mobile_which_goes_to_metadata(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """With two known columns the first of the documented list is the phone; the other is metadata."""
    campaign_id = await new_campaign(client, auth)
    body = b"Mobile,Phone\n4155550199,4155550101\n"
    await add(client, auth, campaign_id, content=body, headers=csv_headers())
    assert stored_contacts(app, campaign_id) == {"+14155550101": (None, {"mobile": "4155550199"})}


@pytest.mark.parametrize("column", ["Work Line", "work line", "work_line"])
async def test_phone_column_names_any_column(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], column: str
) -> None:
    """?phone_column= picks a column no list knows (exact, or case/space-insensitively); phone is metadata."""
    campaign_id = await new_campaign(client, auth)
    body = b"phone,Work Line\n4155550199,4155550101\n"
    params = {"phone_column": column}
    await add(client, auth, campaign_id, content=body, headers=csv_headers(), params=params)
    assert stored_contacts(app, campaign_id) == {"+14155550101": (None, {"phone": "4155550199"})}


async def test_an_unknown_phone_column_is_400_listing_the_columns(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """?phone_column= naming no column of the header: 400 naming it and the columns read; nothing stored."""
    campaign_id = await new_campaign(client, auth)
    message = await refused(
        client,
        auth,
        campaign_id,
        content=b"phone,name\n4155550101,Ann\n",
        headers=csv_headers(),
        params={"phone_column": "fax"},
    )
    assert "'fax'" in message and "['phone', 'name']" in message
    assert stored_contacts(app, campaign_id) == {}


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
async def test_no_phone_column_is_400_listing_the_columns_read(
    client: httpx.AsyncClient, auth: dict[str, str], delimiter: str
) -> None:
    """The 400 says which columns were read (so a wrong delimiter or header shows), and the way out."""
    campaign_id = await new_campaign(client, auth)
    body = delimiter.join(["Full Name", "E-mail", "Fax"]) + "\nAnn,a@b.c,1\n"
    message = await refused(client, auth, campaign_id, content=body.encode(), headers=csv_headers())
    assert "['Full Name', 'E-mail', 'Fax']" in message
    assert "phone_column" in message


# --- 3. charsets ----------------------------------------------------------------------------------

NAMES = "Zoë Müller-Ñúñez, François"  # every character exists in windows-1252 and iso-8859-1


@pytest.mark.parametrize(
    ("charset", "encoded"),
    [
        ("windows-1252", NAMES.encode("windows-1252")),
        ("cp1252", NAMES.encode("windows-1252")),
        ("iso-8859-1", NAMES.encode("iso-8859-1")),
        ("latin1", NAMES.encode("iso-8859-1")),
        ("utf-16", b""),  # the BOM and text are written below
        ("UTF-8", NAMES.encode()),
    ],
)
async def test_a_declared_charset_is_honoured(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], charset: str, encoded: bytes
) -> None:
    """`Content-Type: text/csv; charset=...` decodes the body in that charset (semicolon file)."""
    campaign_id = await new_campaign(client, auth)
    text = f'phone;name\n4155550101;"{NAMES}"\n'
    body = text.encode(charset) if charset == "utf-16" else text.encode(charset.replace("UTF-8", "utf-8"))
    assert encoded == b"" or encoded in body
    data = await add(client, auth, campaign_id, content=body, headers=csv_headers(charset))
    assert data["accepted"] == 1, data
    assert stored_contacts(app, campaign_id) == {"+14155550101": (NAMES, None)}


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-8"])
async def test_a_bom_without_a_declared_charset(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], encoding: str
) -> None:
    """A UTF-16 (either order) or UTF-8 BOM names the charset when the header does not."""
    campaign_id = await new_campaign(client, auth)
    text = f"\ufeffPhone Number\tName\r\n4155550101\t{NAMES}\r\n"
    data = await add(client, auth, campaign_id, content=text.encode(encoding), headers=csv_headers())
    assert data["accepted"] == 1, data
    assert stored_contacts(app, campaign_id) == {"+14155550101": (NAMES, None)}


async def test_no_charset_and_no_bom_means_utf8(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """windows-1252 bytes sent without a charset: 400 saying it is not UTF-8 and how to declare it."""
    campaign_id = await new_campaign(client, auth)
    body = f"phone;name\n4155550101;{NAMES}\n".encode("windows-1252")
    message = await refused(client, auth, campaign_id, content=body, headers=csv_headers())
    assert "UTF-8" in message and "charset=" in message


@pytest.mark.parametrize(
    ("charset", "body"),
    [
        ("klingon-8", b"phone\n4155550101\n"),  # unknown to Python
        ("rot13", b"phone\n4155550101\n"),  # a codec, but not a text encoding
        ("utf-8", b"phone;name\n4155550101;Zo\xeb\n"),  # not text in the declared charset
        ("ascii", b"phone;name\n4155550101;Zo\xeb\n"),
    ],
)
async def test_an_unknown_charset_or_undecodable_bytes_is_400_naming_it(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], charset: str, body: bytes
) -> None:
    """Never a 500 and never half a list: the message names the charset."""
    campaign_id = await new_campaign(client, auth)
    message = await refused(client, auth, campaign_id, content=body, headers=csv_headers(charset))
    assert charset in message
    assert stored_contacts(app, campaign_id) == {}


# --- 4. regions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "phone", "expected"),
    [
        ("GB", "2079460958", "+442079460958"),  # a London number that lost its 0
        ("GB", "020 7946 0958", "+442079460958"),
        ("GB", "07400 123456", "+447400123456"),
        ("GB", "+1 608 555 0147", "+16085550147"),  # an international number ignores the region
        ("US", "2079460958", "+12079460958"),  # a valid US number, and correct on a US campaign
        ("US", "(608) 555-0147", "+16085550147"),
        ("DE", "030 12345678", "+493012345678"),
        ("gb", "020 7946 0958", "+442079460958"),  # lower case is upper-cased
    ],
)
async def test_the_campaigns_default_region_reads_national_numbers(
    app: CallstatsApp,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    region: str,
    phone: str,
    expected: str,
) -> None:
    """A UK list on a GB campaign needs no +44; the region is shown upper-cased."""
    campaign_id = await new_campaign(client, auth, default_region=region)
    shown = await client.get(f"/getCampaign/{campaign_id}", headers=auth)
    assert shown.json()["data"]["default_region"] == region.upper()
    data = await add(client, auth, campaign_id, json={"contacts": [{"phone": phone}]})
    assert data["accepted"] == 1, data
    assert list(stored_contacts(app, campaign_id)) == [expected]


async def test_a_uk_number_on_a_us_campaign_is_refused_with_a_reason(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """`020 7946 0958` is not a US number: refused, saying so, not stored as something else."""
    campaign_id = await new_campaign(client, auth, default_region="US")
    data = await add(client, auth, campaign_id, json={"contacts": [{"phone": "020 7946 0958"}]})
    assert (data["accepted"], data["invalid"]) == (0, 1)
    assert "US" in data["errors"][0]["reason"]


async def test_region_query_overrides_the_campaign_for_one_request(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """?region=GB on a US campaign reads that request's national numbers as British, and only that one."""
    campaign_id = await new_campaign(client, auth, default_region="US")
    body = {"contacts": [{"phone": "2079460958"}]}
    await add(client, auth, campaign_id, json=body, params={"region": "gb"})
    await add(client, auth, campaign_id, json=body)
    assert sorted(stored_contacts(app, campaign_id)) == ["+12079460958", "+442079460958"]


@pytest.mark.parametrize("region", ["XX", "UK", "USA", "1", ""])
async def test_an_unknown_region_is_400(
    app: CallstatsApp, client: httpx.AsyncClient, auth: dict[str, str], region: str
) -> None:
    """createCampaign and addContacts?region= refuse a region phonenumbers has no plan for."""
    response = await client.post(
        "/createCampaign", json={"name": "x", "default_region": region}, headers=auth
    )
    assert response.status_code == 400 and response.json()["error"] == "VALIDATION_ERROR"
    assert "default_region" in response.json()["message"]
    campaign_id = await new_campaign(client, auth)
    message = await refused(
        client, auth, campaign_id, json={"contacts": [{"phone": "+14155550101"}]}, params={"region": region}
    )
    assert message.startswith("region:")
    assert stored_contacts(app, campaign_id) == {}


async def test_the_default_region_is_the_server_setting(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Without default_region a campaign takes CALLSTATS_DEFAULT_REGION (US here) in every answer."""
    campaign_id = await new_campaign(client, auth)
    created = await client.get(f"/getCampaign/{campaign_id}", headers=auth)
    assert created.json()["data"]["default_region"] == "US"
    listed = await client.get("/getCampaigns", headers=auth)
    assert [c["default_region"] for c in listed.json()["data"]] == ["US"]
    response = await client.post("/createCampaign", json={"name": "UK", "default_region": "GB"}, headers=auth)
    assert response.status_code == 201 and response.json()["data"]["default_region"] == "GB"


# --- 5. duplicates named, invalid rows explained ----------------------------------------------------


async def test_duplicates_name_the_row_and_the_earlier_row_or_null(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Within the request: earlier_row is the first row; already in the campaign: earlier_row null."""
    campaign_id = await new_campaign(client, auth)
    await add(client, auth, campaign_id, json={"contacts": [{"phone": "+14155550101"}]})
    rows = ["(415) 555-0101", "4155550102", "415.555.0102", "+1 415 555 0102", "4155550101", "bad"]
    data = await add(client, auth, campaign_id, json={"contacts": [{"phone": p} for p in rows]})
    assert (data["received"], data["accepted"], data["duplicate"], data["invalid"]) == (6, 1, 4, 1)
    assert data["duplicates"] == [
        {"row": 1, "phone": "+14155550101", "earlier_row": None},
        {"row": 3, "phone": "+14155550102", "earlier_row": 2},
        {"row": 4, "phone": "+14155550102", "earlier_row": 2},
        {"row": 5, "phone": "+14155550101", "earlier_row": 1},
    ]


async def test_a_second_identical_upload_names_every_row_as_already_there(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Re-sending a list: every row a duplicate with earlier_row null, and duplicate counts them."""
    campaign_id = await new_campaign(client, auth)
    body = b"phone\n4155550101\n4155550102 x7\n4155550103\n"
    await add(client, auth, campaign_id, content=body, headers=csv_headers())
    again = await add(client, auth, campaign_id, content=body, headers=csv_headers())
    assert (again["accepted"], again["duplicate"]) == (0, 3)
    assert [(d["row"], d["phone"], d["earlier_row"]) for d in again["duplicates"]] == [
        (1, "+14155550101", None),
        (2, "+14155550102;ext=7", None),
        (3, "+14155550103", None),
    ]


@pytest.mark.parametrize(
    ("sent", "shown", "words"),
    [
        ("6.08555E+09", "6.08555E+09", "looks like Excel scientific notation (6.08555E+09)"),
        ("6.08555e9", "6.08555e9", "looks like Excel scientific notation (6.08555e9)"),
        ("6.085550147E+9", "6.085550147E+9", "scientific notation"),
        ("6085550147.0", "6085550147.0", "has a decimal part (6085550147.0)"),
        (6085550147.0, "6085550147.0", "has a decimal part"),
        (6.08555e9, "6085550000.0", "has a decimal part"),
        ("2024-01-31", "2024-01-31", "looks like a date"),
        ("31/01/2024", "31/01/2024", "looks like a date"),
        ("12", "12", "too short"),
        ("608555014", "608555014", "too short"),
        ("+1608555014712345678", "+1608555014712345678", "too long"),
        ("+999 1234567", "+999 1234567", "unknown country code"),
        ("555-0147", "555-0147", "missing its area code"),
        ("call me", "call me", "not a phone number"),
        (True, "true", "must be a string"),
        ("", "", "empty"),
    ],
)
async def test_invalid_rows_say_why_and_echo_the_value_sent(
    client: httpx.AsyncClient, auth: dict[str, str], sent: Any, shown: str, words: str
) -> None:
    """The reason is one a user can act on; `phone` is what was sent, as text, even a JSON number."""
    campaign_id = await new_campaign(client, auth)
    body = {"contacts": [{"phone": "+14155550101"}, {"phone": sent}, {"phone": "+14155550102"}]}
    data = await add(client, auth, campaign_id, json=body)
    assert (data["accepted"], data["invalid"]) == (2, 1)
    [error] = data["errors"]
    assert error["row"] == 2 and error["phone"] == shown
    assert words in error["reason"], error["reason"]


async def test_spreadsheet_shapes_in_a_csv_are_explained(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The same reasons for CSV cells; the neighbours are added."""
    campaign_id = await new_campaign(client, auth)
    body = b"phone;name\n6,08555E+09;a\n4155550101;b\n6.08555E+09;c\n"
    data = await add(client, auth, campaign_id, content=body, headers=csv_headers())
    assert (data["accepted"], data["invalid"]) == (1, 2)
    assert [(e["row"], e["phone"]) for e in data["errors"]] == [(1, "6,08555E+09"), (3, "6.08555E+09")]
    assert all("scientific notation" in e["reason"] for e in data["errors"])
