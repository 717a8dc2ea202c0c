"""The CSV reader of addContacts reads every body as csv.DictReader does."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstats.campaigns.contact_lists import contact_rows
from callstats.campaigns.schemas import ContactRow
from callstats.errors import ValidationFailed


def dict_reader_rows(body: bytes) -> list[ContactRow]:
    """The rows as a csv.DictReader reads them: the reference the index-based reader must match.

    Non-blank values past the header's columns (DictReader's restkey) make the row invalid."""
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig")))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    rows = []
    for index, record in enumerate(reader, start=1):
        rest = record.pop(None, [])
        problem = None
        if any(value.strip() for value in rest):
            width = len(fields)
            problem = (
                f"{width + len(rest)} values but the header has {width} columns"
                " (quote a value holding the delimiter ',')"
            )
        extra = {k: v for k, v in record.items() if k not in ("phone", "name") and k and v not in (None, "")}
        rows.append(
            ContactRow(index, record.get("phone") or "", record.get("name") or None, extra or None, problem)
        )
    return rows


@pytest.mark.parametrize(
    "body",
    [
        "phone,name,segment\n+12122000000,Ann,3\n+12122000001,,\n",
        "Phone , NAME,City\r\n4155550101,Ann,Oakland\r\n\r\n4155550102\r\n",  # blank line, short row
        "phone,name\n4155550101,Ann,extra,more\n",  # long row: the extra values have no column, invalid
        "phone,name\n4155550101,Ann,, \n",  # long row of blank values (trailing delimiters): kept
        "phone,phone,city,city\n1,2,a,b\n3,,c,\n",  # repeated columns: the last one wins
        "city,,phone\nOakland,x,4155550101\n,,\n",  # a nameless column
        'phone,name,note\n"+1 415 555 0101","Smith, Jane","two\nlines"\n',
        "\ufeffphone\n4155550101\n",
        "phone\n",
        "phone,metadata\n4155550101,{}\n",
    ],
)
def test_csv_rows_are_read_as_dict_reader_reads_them(body: str) -> None:
    """Blank lines, short and long rows, repeated and nameless columns, quoting, a BOM."""
    assert contact_rows(body.encode(), "text/csv") == dict_reader_rows(body.encode())


cells = st.text(alphabet=st.sampled_from('ab1+ ,"\n'), max_size=6)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(["phone", "name", "Phone", "city", "", "x"]), min_size=1, max_size=5),
    st.lists(st.lists(cells, max_size=6), max_size=6),
)
def test_random_csv_bodies_are_read_as_dict_reader_reads_them(
    header: list[str], records: list[list[str]]
) -> None:
    """Any header with a phone column and any rows: the same ContactRows as csv.DictReader gives."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*header, "phone"])
    writer.writerows(records)
    body = out.getvalue().encode()
    assert contact_rows(body, "text/csv") == dict_reader_rows(body)


def test_a_header_without_phone_is_refused() -> None:
    """No phone column: the body is refused whole."""
    with pytest.raises(ValidationFailed):
        contact_rows(b"email\n1\n", "text/csv")
