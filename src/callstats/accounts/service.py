"""Accounts and keys: create, list, revoke, authenticate."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert, select, update

from callstats.accounts import keys
from callstats.clock import now_ms
from callstats.db.driver import Statement
from callstats.db.engine import Database
from callstats.db.schema import accounts, api_keys
from callstats.errors import ApiError, Forbidden, Unauthorized


@dataclass(frozen=True)
class ApiKey:
    """An authenticated key: whose it is and what it may do."""

    key_id: str
    account_id: str
    scope: str

    def require_write(self) -> None:
        """Refuse a read-only key on a writing route."""
        if self.scope != "write":
            raise Forbidden("This API key is read-only; a write key is needed")


@dataclass(frozen=True)
class CreatedKey:
    """A new key; `plaintext` is shown once."""

    key_id: str
    account_id: str
    plaintext: str
    scope: str


@dataclass(frozen=True)
class KeyListing:
    """A key as `keys list` shows it (never the secret)."""

    key_id: str
    account_name: str
    scope: str
    created_at: int
    revoked_at: int | None


def _account_id(conn: Connection, name: str) -> str:
    """The id of the named account, created if new."""
    found = conn.execute(select(accounts.c.id).where(accounts.c.name == name)).scalar()
    if found is not None:
        return str(found)
    account_id = str(uuid.uuid4())
    conn.execute(insert(accounts).values(id=account_id, name=name, created_at=now_ms()))
    return account_id


def create_key(db: Database, account_name: str, scope: str = "write") -> CreatedKey:
    """Issue a key for an account (created if it does not exist yet)."""
    if scope not in keys.SCOPES:
        raise ValueError(f"scope must be one of {', '.join(keys.SCOPES)}")
    issued = keys.generate()

    def work(conn: Connection) -> str:
        account_id = _account_id(conn, account_name)
        conn.execute(
            insert(api_keys).values(
                id=issued.key_id,
                account_id=account_id,
                secret_hash=issued.secret_hash,
                scope=scope,
                created_at=now_ms(),
            )
        )
        return account_id

    account_id = db.write(work)
    return CreatedKey(key_id=issued.key_id, account_id=account_id, plaintext=issued.plaintext, scope=scope)


def list_keys(db: Database) -> list[KeyListing]:
    """Every key, newest first, without secrets."""
    query = (
        select(api_keys.c.id, accounts.c.name, api_keys.c.scope, api_keys.c.created_at, api_keys.c.revoked_at)
        .join(accounts, accounts.c.id == api_keys.c.account_id)
        .order_by(api_keys.c.created_at.desc())
    )
    with db.read() as conn:
        return [KeyListing(*row) for row in conn.execute(query).all()]


def revoke_key(db: Database, key_id: str) -> bool:
    """Revoke a key; False when there is no such live key."""

    def work(conn: Connection) -> bool:
        result = conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now_ms())
        )
        return result.rowcount == 1

    return db.write(work)


StoredKey = tuple[str, str, str, int | None]


def key_id_of(plaintext: str | None) -> str:
    """The key id of an x-api-key header, or 401 when it is missing or malformed (no database needed)."""
    if not plaintext:
        raise Unauthorized("Missing x-api-key header")
    key_id = keys.parse_key_id(plaintext)
    if key_id is None:
        raise Unauthorized("Invalid API key")
    return key_id


def authenticate(db: Database, plaintext: str | None) -> ApiKey:
    """The key behind an x-api-key header, or 401."""
    key_id = key_id_of(plaintext)
    assert plaintext is not None
    with db.read() as conn:
        return checked_key(plaintext, key_id, stored_key(conn, key_id))


def writer_accounts(conn: Connection, presented: list[tuple[str, str]]) -> list[str | ApiError]:
    """For each (plaintext, key id) presented, its write key's account or why not (401 or 403): one query."""
    rows = {
        row[0]: (row[1], row[2], row[3], row[4])
        for row in _KEY_ROWS.rows(conn, {"ids": sorted({k for _, k in presented})})
    }
    found: list[str | ApiError] = []
    for plaintext, key_id in presented:
        try:
            key = checked_key(plaintext, key_id, rows.get(key_id))
            key.require_write()
            found.append(key.account_id)
        except ApiError as exc:
            found.append(exc)
    return found


_KEY_ROWS = Statement(
    select(
        api_keys.c.id, api_keys.c.account_id, api_keys.c.secret_hash, api_keys.c.scope, api_keys.c.revoked_at
    ).where(api_keys.c.id.in_(bindparam("ids", expanding=True)))
)
_KEY_ROW = Statement(
    select(api_keys.c.account_id, api_keys.c.secret_hash, api_keys.c.scope, api_keys.c.revoked_at).where(
        api_keys.c.id == bindparam("key_id")
    )
)


def stored_key(conn: Connection, key_id: str) -> StoredKey | None:
    """The stored row (account_id, secret_hash, scope, revoked_at) of a key id, if there is one."""
    rows = _KEY_ROW.rows(conn, {"key_id": key_id})
    return (rows[0][0], rows[0][1], rows[0][2], rows[0][3]) if rows else None


def checked_key(plaintext: str, key_id: str, row: StoredKey | None) -> ApiKey:
    """Turn a stored key row (account_id, secret_hash, scope, revoked_at) into an ApiKey, or 401."""
    if row is None:
        raise Unauthorized("Invalid API key")
    account_id, secret_hash, scope, revoked_at = row
    if not keys.matches(plaintext, secret_hash):
        raise Unauthorized("Invalid API key")
    if revoked_at is not None:
        raise Unauthorized("This API key has been revoked")
    return ApiKey(key_id=key_id, account_id=account_id, scope=scope)
