"""API keys: format and checksum, hash-only storage, scopes, revocation, and the `callstats keys` CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from callstats.accounts import keys
from callstats.accounts.service import create_key, list_keys, revoke_key
from callstats.app import CallstatsApp
from callstats.db.schema import accounts, api_keys
from tests.conftest import new_campaign

CLI = Path(sys.executable).parent / "callstats"
KEY_SHAPE = re.compile(r"^cs_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}$")


# The key format, pure


def test_generated_key_has_the_documented_shape() -> None:
    """cs_<12 id chars>_<32 secret + 6 checksum chars>, base62; its id and hash come with it."""
    issued = keys.generate()
    assert KEY_SHAPE.match(issued.plaintext), issued.plaintext
    assert issued.plaintext.startswith(f"cs_{issued.key_id}_")
    assert keys.parse_key_id(issued.plaintext) == issued.key_id
    assert issued.secret_hash == hashlib.sha256(issued.plaintext.encode()).hexdigest()
    assert issued.plaintext not in issued.secret_hash
    assert keys.matches(issued.plaintext, issued.secret_hash)


def test_generated_keys_are_unique() -> None:
    """Ids and secrets are random: no two of many keys share either."""
    issued = [keys.generate() for _ in range(200)]
    assert len({k.key_id for k in issued}) == len(issued)
    assert len({k.plaintext[16:48] for k in issued}) == len(issued)


def test_every_single_character_typo_fails_the_checksum() -> None:
    """Any one character changed anywhere after the prefix makes the key unparseable."""
    plaintext = keys.generate().plaintext
    for position in range(len(keys.PREFIX), len(plaintext)):
        if plaintext[position] == "_":
            continue
        for char in keys.ALPHABET:
            if char != plaintext[position]:
                typo = plaintext[:position] + char + plaintext[position + 1 :]
                assert keys.parse_key_id(typo) is None, (position, char)


def test_adjacent_transpositions_fail_the_checksum() -> None:
    """Two neighbouring characters swapped, the other common typo, is caught too."""
    plaintext = keys.generate().plaintext
    for position in range(len(keys.PREFIX), len(plaintext) - 1):
        a, b = plaintext[position], plaintext[position + 1]
        if a != b and "_" not in (a, b):
            swapped = plaintext[:position] + b + a + plaintext[position + 2 :]
            assert keys.parse_key_id(swapped) is None, position


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "cs_",
        "not-a-key",
        "xx_" + "A" * 12 + "_" + "B" * 38,
        "cs_" + "A" * 11 + "_" + "B" * 38,
        "cs_" + "A" * 12 + "_" + "B" * 37,
        "cs_" + "A" * 12 + "_" + "B" * 39,
        "cs_" + "A" * 12 + "-" + "B" * 38,
        "cs_" + "A" * 12 + "_" + "B" * 37 + "!",
    ],
)
def test_malformed_keys_do_not_parse(candidate: str) -> None:
    """Wrong prefix, length, separator or alphabet: no key id."""
    assert keys.parse_key_id(candidate) is None


def test_whitespace_around_a_key_is_not_accepted() -> None:
    """The key itself must be exact: parsing never ignores a pasted newline or space (the header's
    optional whitespace is trimmed before, by `presented`)."""
    plaintext = keys.generate().plaintext
    for padded in (plaintext + "\n", " " + plaintext, plaintext + " "):
        assert keys.parse_key_id(padded) is None


@pytest.mark.parametrize(
    "field_value",
    [" {k}", "{k} ", "  {k}  ", "\t{k}", "{k}\t", "\t {k} \t", "{k}"],
    ids=["leading-space", "trailing-space", "spaces-both", "leading-tab", "trailing-tab", "mixed", "bare"],
)
def test_optional_whitespace_around_the_header_is_not_part_of_the_key(field_value: str) -> None:
    """RFC 9110, section 5.5: leading and trailing spaces and tabs of a field value are trimmed."""
    plaintext = keys.generate().plaintext
    assert keys.presented(field_value.format(k=plaintext)) == plaintext
    assert keys.presented(field_value.format(k=plaintext).encode("latin-1")) == plaintext  # raw ASGI bytes


def test_raw_header_bytes_are_octets() -> None:
    """The one reader takes the raw ASGI value too: latin-1, so a byte over 0x7f never fails to decode
    (the key is then merely unparsable, a 401)."""
    assert keys.presented(b"") == ""
    assert keys.presented(b" cs_\xe9 ") == "cs_\xe9"
    assert keys.parse_key_id(keys.presented(b"cs_\xff")) is None


@pytest.mark.parametrize("other", ["\n", "\r", "\x00", "\x0b"])
def test_only_spaces_and_tabs_are_trimmed(other: str) -> None:
    """A newline, CR, NUL or vertical tab is not optional whitespace: the key stays unparsable."""
    plaintext = keys.generate().plaintext
    for padded in (other + plaintext, plaintext + other):
        assert keys.parse_key_id(keys.presented(padded)) is None
    assert keys.presented(None) == "" and keys.presented("") == ""


def test_matches_only_the_hashed_key() -> None:
    """A different key, even one with a valid checksum, does not match the stored hash."""
    issued, other = keys.generate(), keys.generate()
    assert not keys.matches(other.plaintext, issued.secret_hash)
    assert not keys.matches(issued.plaintext, other.secret_hash)


# Storage


def test_only_a_hash_is_stored(app: CallstatsApp) -> None:
    """Neither the key nor its secret appears in any column of the api_keys or accounts rows."""
    created = create_key(app.db, "acme")
    secret = created.plaintext[len(keys.PREFIX) + keys.KEY_ID_LENGTH + 1 :]
    with app.db.read() as conn:
        rows = [*conn.execute(select(api_keys)).all(), *conn.execute(select(accounts)).all()]
    stored = " ".join(str(value) for row in rows for value in row)
    assert created.key_id in stored
    assert created.plaintext not in stored
    assert secret not in stored
    assert secret[:16] not in stored
    assert hashlib.sha256(created.plaintext.encode()).hexdigest() in stored


def test_keys_of_one_account_name_share_the_account(app: CallstatsApp) -> None:
    """A second key for the same account name joins that account; another name is another account."""
    first, second = create_key(app.db, "acme"), create_key(app.db, "acme", "read")
    other = create_key(app.db, "globex")
    assert first.account_id == second.account_id != other.account_id
    assert first.key_id != second.key_id
    assert (first.scope, second.scope) == ("write", "read")


def test_unknown_scope_is_refused(app: CallstatsApp) -> None:
    """Only read and write exist."""
    with pytest.raises(ValueError, match="scope"):
        create_key(app.db, "acme", "admin")
    assert list_keys(app.db) == []


def test_revoke_is_once(app: CallstatsApp) -> None:
    """Revoking a live key succeeds once; an unknown or already revoked key is not revoked."""
    created = create_key(app.db, "acme")
    assert revoke_key(app.db, created.key_id)
    assert not revoke_key(app.db, created.key_id)
    assert not revoke_key(app.db, "nosuchkey123")
    [listed] = list_keys(app.db)
    assert listed.key_id == created.key_id and listed.revoked_at is not None


# Keys over HTTP


async def test_read_key_reads_and_write_key_does_everything(
    client: httpx.AsyncClient, make_key: Callable[..., str]
) -> None:
    """A read key sees the account's campaigns; a write key can read too."""
    write = {"x-api-key": make_key("acme", "write")}
    read = {"x-api-key": make_key("acme", "read")}
    campaign_id = await new_campaign(client, write)
    for headers in (read, write):
        for path in ("/getCampaigns", f"/getCampaign/{campaign_id}", f"/getCampaignStats/{campaign_id}"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
    refused = await client.post("/createCampaign", json={"name": "x"}, headers=read)
    assert refused.status_code == 403
    assert refused.json()["error"] == "FORBIDDEN"


async def test_revocation_takes_effect_on_the_next_request(
    app: CallstatsApp, client: httpx.AsyncClient
) -> None:
    """A key that worked is refused right after it is revoked, on the hot path and elsewhere."""
    created = create_key(app.db, "acme")
    headers = {"x-api-key": created.plaintext}
    campaign_id = await new_campaign(client, headers)
    paths = ("/getCampaigns", f"/getCampaignStats/{campaign_id}")
    assert [(await client.get(p, headers=headers)).status_code for p in paths] == [200, 200]
    revoke_key(app.db, created.key_id)
    assert [(await client.get(p, headers=headers)).status_code for p in paths] == [401, 401]


# The CLI


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `callstats` script against a database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSTATS_")}
    env["CALLSTATS_DATABASE_URL"] = database_url
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_cli_create_list_revoke(
    database_url: str, app: CallstatsApp, client: httpx.AsyncClient
) -> None:
    """Keys made by the CLI work over HTTP; list shows them without secrets; revoke turns them off."""
    made = run_cli(database_url, "keys", "create", "--account", "acme", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert {"key", "key_id", "account_id"} <= set(created)
    assert keys.parse_key_id(created["key"]) == created["key_id"]
    uuid.UUID(created["account_id"])
    reader = json.loads(
        run_cli(database_url, "keys", "create", "--account", "acme", "--scope", "read", "--json").stdout
    )
    assert reader["account_id"] == created["account_id"]

    write, read = {"x-api-key": created["key"]}, {"x-api-key": reader["key"]}
    campaign_id = await new_campaign(client, write)
    assert (await client.get(f"/getCampaign/{campaign_id}", headers=read)).status_code == 200
    assert (await client.post("/createCampaign", json={"name": "x"}, headers=read)).status_code == 403

    listing = run_cli(database_url, "keys", "list")
    assert listing.returncode == 0, listing.stderr
    assert created["key_id"] in listing.stdout and reader["key_id"] in listing.stdout
    assert "acme" in listing.stdout and "read" in listing.stdout
    assert created["key"] not in listing.stdout and reader["key"] not in listing.stdout

    revoked = run_cli(database_url, "keys", "revoke", created["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    line = next(
        x for x in run_cli(database_url, "keys", "list").stdout.splitlines() if created["key_id"] in x
    )
    assert "revoked" in line
    assert (await client.get("/getCampaigns", headers=write)).status_code == 401
    assert (await client.get("/getCampaigns", headers=read)).status_code == 200
    again = run_cli(database_url, "keys", "revoke", created["key_id"])
    assert again.returncode != 0


def test_cli_plain_output_and_bad_scope(sqlite_template: Path, tmp_path: Path) -> None:
    """Without --json the key is printed once for a human; an unknown scope is a usage error."""
    database = tmp_path / "cli.db"
    shutil.copy(sqlite_template, database)
    database_url = f"sqlite:///{database}"
    made = run_cli(database_url, "keys", "create", "--account", "acme")
    assert made.returncode == 0, made.stderr
    printed = [word for word in made.stdout.split() if KEY_SHAPE.match(word)]
    assert len(printed) == 1 and keys.parse_key_id(printed[0]) is not None
    bad = run_cli(database_url, "keys", "create", "--account", "acme", "--scope", "admin")
    assert bad.returncode == 2
    assert "scope" in bad.stderr
    assert run_cli(database_url, "keys", "list").stdout.count("acme") == 1
