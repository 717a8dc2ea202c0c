"""`callstats import`: chunking a CSV file, and importing it through a real server subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from callstats.config import sqlalchemy_url
from callstats.db.schema import contacts
from callstats.importer import ImportFailed, ImportTotals, import_csv, read_chunks
from tests.factories import create_campaign, generate_csv
from tests.servers import ServerProcess, issue_key, run_cli, server_env, start_server


def test_chunks_repeat_the_header_and_keep_rows_verbatim(tmp_path: Path) -> None:
    """Bodies carry the header plus rows as written; each row knows its file line."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(
        b'\xef\xbb\xbfphone,name,crm_id\r\n+14155550101,Ada,A1\r\n\r\n+14155550102,"Bob\nJr",B2\r\n'
        b"+14155550103,Cy,C3"
    )
    with path.open("rb") as stream:
        chunks = list(read_chunks(stream, rows_per_request=2))
    assert [c.body for c in chunks] == [
        b'phone,name,crm_id\r\n+14155550101,Ada,A1\r\n+14155550102,"Bob\nJr",B2\r\n',
        b"phone,name,crm_id\r\n+14155550103,Cy,C3\n",
    ]
    assert [c.lines for c in chunks] == [(2, 4), (6,)]
    assert sum(c.file_bytes for c in chunks) == path.stat().st_size


def test_chunks_stay_under_the_body_limit(tmp_path: Path) -> None:
    """Long rows start a new body before it would pass the byte cap."""
    path = tmp_path / "wide.csv"
    path.write_text("phone,notes\n" + "".join(f"+1415555{i:04d},{'x' * 100}\n" for i in range(50)))
    with path.open("rb") as stream:
        chunks = list(read_chunks(stream, max_body_bytes=1_000))
    assert all(len(c.body) <= 1_000 for c in chunks)
    assert sum(len(c.lines) for c in chunks) == 50
    assert [line for c in chunks for line in c.lines] == list(range(2, 52))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name,crm_id\nAda,1\n", r"line 1: no phone column .*columns read: \['name', 'crm_id'\]"),
        (b"name;crm_id\nAda;1\n", r"line 1: no phone column .*columns read: \['name', 'crm_id'\]"),
        (b"\n\n", "the file has no header row"),
        (b"phone\n+14155550101\n\xff\xfe\n", "line 3: not UTF-8; name the file's charset with --encoding"),
        (b"phone;name\n+14155550101;Zo\xeb\n", "line 2: not UTF-8"),
    ],
)
def test_unusable_files_fail_before_any_request(tmp_path: Path, content: bytes, message: str) -> None:
    """A file the server could never take is refused locally, saying where."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with path.open("rb") as stream, pytest.raises(ImportFailed, match=message):
        list(read_chunks(stream))


@pytest.mark.parametrize(
    ("encoding", "declared"),
    [("windows-1252", "windows-1252"), ("iso-8859-1", "latin1"), ("utf-16", None), ("utf-8-sig", None)],
)
@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_any_charset_and_delimiter_is_sent_as_utf8_chunks(
    tmp_path: Path, encoding: str, declared: str | None, delimiter: str
) -> None:
    """A windows-1252, latin-1 or UTF-16 (BOM) file in any delimiter: UTF-8 bodies with the same rows,
    the header repeated, file lines kept, and the file's bytes all counted."""
    path = tmp_path / "contacts.csv"
    text = f'phone{delimiter}name\n+14155550101{delimiter}Zoë, Ann\n\n+14155550102{delimiter}"Bo\nJr"\n'
    path.write_text(text, encoding=encoding)
    with path.open("rb") as stream:
        chunks = list(read_chunks(stream, rows_per_request=1, encoding=declared))
    header = f"phone{delimiter}name\n".encode()
    assert [c.body for c in chunks] == [
        header + f"+14155550101{delimiter}Zoë, Ann\n".encode(),
        header + f'+14155550102{delimiter}"Bo\nJr"\n'.encode(),
    ]
    assert [c.lines for c in chunks] == [(2,), (4,)]
    assert sum(c.file_bytes for c in chunks) == path.stat().st_size


def test_an_excel_sep_line_is_sent_in_front_of_each_header(tmp_path: Path) -> None:
    """A `sep=;` first line: the server must read the same delimiter, so every chunk starts with it;
    file lines still count it."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"sep=;\r\nphone;name\r\n+14155550101;Smith, Jane\r\n+14155550102;Bob\r\n")
    with path.open("rb") as stream:
        chunks = list(read_chunks(stream, rows_per_request=1))
    assert [c.body for c in chunks] == [
        b"sep=;\r\nphone;name\r\n+14155550101;Smith, Jane\r\n",
        b"sep=;\r\nphone;name\r\n+14155550102;Bob\r\n",
    ]
    assert [c.lines for c in chunks] == [(3,), (4,)]
    assert sum(c.file_bytes for c in chunks) == path.stat().st_size


def test_an_unknown_encoding_fails_before_any_request(tmp_path: Path) -> None:
    """--encoding naming no codec Python knows."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"phone\n+14155550101\n")
    with path.open("rb") as stream, pytest.raises(ImportFailed, match="unknown encoding 'klingon'"):
        list(read_chunks(stream, encoding="klingon"))


def test_phone_column_is_checked_locally(tmp_path: Path) -> None:
    """--phone-column naming a column the header has passes; another is refused before any request."""
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"Work Line;name\n+14155550101;Ann\n")
    with path.open("rb") as stream:
        assert len(list(read_chunks(stream, phone_column="Work Line"))) == 1
    with path.open("rb") as stream, pytest.raises(ImportFailed, match="no column 'fax'"):
        list(read_chunks(stream, phone_column="fax"))


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """`callstats serve` on the test database, and a write key from `callstats keys create --json`."""
    env = server_env(database_url)
    key = issue_key(env)
    running = start_server(env, tmp_path)
    try:
        yield running, key
    finally:
        running.stop()


def test_import_matches_the_campaign_stats(server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    """Several chunks in flight: totals, file line numbers of invalid rows, and the stats total agree."""
    running, key = server
    made = generate_csv(tmp_path / "contacts.csv", 3_000)
    with httpx.Client(base_url=running.base_url, headers={"x-api-key": key}, timeout=30) as http:
        campaign_id = create_campaign(http, "")
        seen: list[ImportTotals] = []
        totals = import_csv(
            made.path, campaign_id, running.base_url, key, on_progress=seen.append, rows_per_request=700
        )
        assert (totals.received, totals.accepted, totals.duplicate, totals.invalid) == (
            made.received,
            made.accepted,
            made.duplicate,
            len(made.invalid_lines),
        )
        assert totals.requests == 5
        assert sorted(e.line for e in totals.errors) == made.invalid_lines
        assert {e.phone for e in totals.errors} == {"12", ""}
        # Requests run in parallel, so across two requests either row of a pair may be the one refused.
        pairs = set(made.repeats) | set(made.repeats.values())
        assert len(totals.duplicates) == len(made.repeats)
        assert {d.line for d in totals.duplicates} <= pairs
        named = [d for d in totals.duplicates if d.earlier_line is not None]
        assert named, "some duplicates repeat a row of their own request"
        assert all(made.repeats[d.line] == d.earlier_line for d in named)
        assert all(d.phone.startswith("+1415") for d in totals.duplicates)
        assert seen[-1].file_bytes == made.path.stat().st_size
        stats = http.get(f"/getCampaignStats/{campaign_id}").json()["data"]
        assert stats["total_contacts"] == stats["calls_pending"] == totals.accepted

        again = import_csv(made.path, campaign_id, running.base_url, key)
        assert (again.accepted, again.duplicate) == (0, made.received - len(made.invalid_lines))
        assert (
            http.get(f"/getCampaignStats/{campaign_id}").json()["data"]["total_contacts"] == totals.accepted
        )


def test_cli_imports_in_requests_of_ten_thousand(server: tuple[ServerProcess, str], tmp_path: Path) -> None:
    """Over 10,000 rows take two requests; --json and the human summary give the same totals."""
    running, key = server
    made = generate_csv(tmp_path / "contacts.csv", 12_000)
    with httpx.Client(base_url=running.base_url, headers={"x-api-key": key}, timeout=30) as http:
        campaign_id = create_campaign(http, "")
        done = run_cli(running.base_url, key, campaign_id, str(made.path), "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["received"], report["accepted"], report["requests"]) == (
            made.received,
            made.accepted,
            2,
        )
        assert [e["line"] for e in report["errors"]] == made.invalid_lines
        assert len(report["duplicates"]) == len(made.repeats)
        assert {d["line"] for d in report["duplicates"]} <= set(made.repeats) | set(made.repeats.values())
        stats = http.get(f"/getCampaignStats/{campaign_id}").json()["data"]
        assert stats["total_contacts"] == made.accepted

        human = run_cli(running.base_url, key, campaign_id, str(made.path))
        assert human.returncode == 0, human.stderr
        assert (
            f"received {made.received:,}, accepted 0, duplicate {made.accepted + made.duplicate:,}"
            in human.stdout
        )
        assert f"  line {made.invalid_lines[0]}: '12': too short for a number of US (+1)" in human.stdout
        assert human.stderr == ""


def test_cli_exits_non_zero_with_the_server_message(
    server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    """An HTTP error stops the import with exit code 1 and the server's own message."""
    running, key = server
    made = generate_csv(tmp_path / "contacts.csv", 10)
    unknown = run_cli(running.base_url, key, "00000000-0000-4000-8000-000000000000", str(made.path))
    assert unknown.returncode == 1
    assert "HTTP 404 NOT_FOUND: Campaign not found" in unknown.stderr
    with httpx.Client(base_url=running.base_url, headers={"x-api-key": key}, timeout=30) as http:
        campaign_id = create_campaign(http, "")
    garbled = key[:-1] + ("A" if key[-1] != "A" else "B")
    bad_key = run_cli(running.base_url, garbled, campaign_id, str(made.path))
    assert bad_key.returncode == 1
    assert "HTTP 401 UNAUTHORIZED" in bad_key.stderr
    nobody = run_cli("http://127.0.0.1:1", key, campaign_id, str(made.path))
    assert nobody.returncode == 1
    assert "cannot reach http://127.0.0.1:1" in nobody.stderr


@pytest.mark.parametrize(
    ("delimiter", "encoding", "flags"),
    [(";", "windows-1252", ["--encoding", "windows-1252"]), ("\t", "utf-16", [])],
)
def test_cli_imports_a_european_excel_file_end_to_end(
    server: tuple[ServerProcess, str],
    database_url: str,
    tmp_path: Path,
    delimiter: str,
    encoding: str,
    flags: list[str],
) -> None:
    """A semicolon windows-1252 file (with --encoding) and a tab UTF-16 file (its BOM): every total
    as generated, and the names stored as written."""
    running, key = server
    made = generate_csv(tmp_path / "contacts.csv", 1_200, delimiter=delimiter, encoding=encoding)
    with httpx.Client(base_url=running.base_url, headers={"x-api-key": key}, timeout=30) as http:
        campaign_id = create_campaign(http, "")
        done = run_cli(running.base_url, key, campaign_id, str(made.path), "--json", *flags)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["received"], report["accepted"], report["duplicate"]) == (
            made.received,
            made.accepted,
            made.duplicate,
        )
        assert [e["line"] for e in report["errors"]] == made.invalid_lines
        stats = http.get(f"/getCampaignStats/{campaign_id}").json()["data"]
        assert stats["total_contacts"] == made.accepted
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    with engine.connect() as conn:
        names = conn.execute(select(contacts.c.name).where(contacts.c.campaign_id == campaign_id)).scalars()
        assert "Zoë, Contact 0" in set(names)
    engine.dispose()
