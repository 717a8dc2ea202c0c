"""SQL of alerting: webhook endpoints, alert rules, the campaigns' alert states, the outbox and the
delivery attempts. The counters themselves are read through db/counters.py (alert_rows)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from callstats.db.driver import Statement
from callstats.db.schema import (
    alert_rules,
    alert_states,
    campaigns,
    webhook_attempts,
    webhook_endpoints,
    webhook_outbox,
)

_ENDPOINT_SHOWN = (
    webhook_endpoints.c.id,
    webhook_endpoints.c.url,
    webhook_endpoints.c.events,
    webhook_endpoints.c.campaign_id,
    webhook_endpoints.c.format,
    webhook_endpoints.c.created_at,
    webhook_endpoints.c.previous_until,
)


# -- endpoints -----------------------------------------------------------------------------------------


def insert_endpoint(conn: Connection, values: dict[str, Any]) -> None:
    """Store a new endpoint (`values` names its columns but the previous secret and deleted_at)."""
    conn.execute(insert(webhook_endpoints).values(**values))


def live_endpoints(conn: Connection, account_id: str) -> Sequence[RowMapping]:
    """The account's endpoints not deleted, newest first, without their secrets."""
    ep = webhook_endpoints.c
    query = (
        select(*_ENDPOINT_SHOWN)
        .where(ep.account_id == account_id, ep.deleted_at.is_(None))
        .order_by(ep.created_at.desc(), ep.id.desc())
    )
    return conn.execute(query).mappings().all()


def endpoint_row(conn: Connection, account_id: str, endpoint_id: str) -> RowMapping | None:
    """One live endpoint of the account, every column, locked for update (PostgreSQL), or None."""
    ep = webhook_endpoints.c
    query = select(webhook_endpoints).where(
        ep.id == endpoint_id, ep.account_id == account_id, ep.deleted_at.is_(None)
    )
    return conn.execute(query.with_for_update()).mappings().first()


def mark_endpoint_deleted(conn: Connection, account_id: str, endpoint_id: str, at_ms: int) -> bool:
    """Set deleted_at on one live endpoint of the account; whether there was one. Its pending messages
    are failed (nothing will send them)."""
    ep = webhook_endpoints.c
    query = (
        update(webhook_endpoints)
        .where(ep.id == endpoint_id, ep.account_id == account_id, ep.deleted_at.is_(None))
        .values(deleted_at=at_ms)
    )
    if not conn.execute(query).rowcount:
        return False
    ob = webhook_outbox.c
    conn.execute(
        update(webhook_outbox)
        .where(ob.endpoint_id == endpoint_id, ob.status == "pending")
        .values(status="failed", next_attempt_at=None)
    )
    return True


def rotate_secret(conn: Connection, endpoint_id: str, sealed: str, previous: str, until: int) -> None:
    """The endpoint's new sealed secret; the one it replaces keeps signing until `until` (epoch ms)."""
    conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(secret_sealed=sealed, previous_secret_sealed=previous, previous_until=until)
    )


def endpoints_of(conn: Connection, account_ids: Iterable[str]) -> Sequence[RowMapping]:
    """The live endpoints (id, account_id, events, campaign_id) of these accounts: the write path's one
    lookup per group, by the (account_id, deleted_at) index; none for an account without alerting."""
    ep = webhook_endpoints.c
    query = select(ep.id, ep.account_id, ep.events, ep.campaign_id).where(
        ep.account_id.in_(sorted(account_ids)), ep.deleted_at.is_(None)
    )
    return conn.execute(query).mappings().all()


_LIVE_ENDPOINTS = Statement(
    select(
        webhook_endpoints.c.id,
        webhook_endpoints.c.account_id,
        webhook_endpoints.c.events,
        webhook_endpoints.c.campaign_id,
    ).where(
        webhook_endpoints.c.account_id == bindparam("account_id"), webhook_endpoints.c.deleted_at.is_(None)
    )
)


def endpoints_sent(conn: Connection, account_id: str) -> Callable[[], list[dict[str, Any]]]:
    """endpoints_of for one account, sent now and fetched by calling the result: the write path reads it
    inside its load's pipeline (no round trip of its own on PostgreSQL)."""
    sent = _LIVE_ENDPOINTS.send(conn, {"account_id": account_id})
    keys = ("id", "account_id", "events", "campaign_id")
    return lambda: [dict(zip(keys, row, strict=True)) for row in sent()]


def accounts_with_endpoints(conn: Connection) -> list[str]:
    """Every account with a live endpoint (the timer evaluates their campaigns)."""
    ep = webhook_endpoints.c
    query = select(ep.account_id).where(ep.deleted_at.is_(None)).distinct().order_by(ep.account_id)
    return list(conn.execute(query).scalars())


def campaign_exists(conn: Connection, account_id: str, campaign_id: str) -> bool:
    """Whether the account has this campaign."""
    query = select(campaigns.c.id).where(campaigns.c.id == campaign_id, campaigns.c.account_id == account_id)
    return conn.execute(query).first() is not None


def campaign_ids(conn: Connection, account_id: str) -> list[str]:
    """The account's campaign ids."""
    query = select(campaigns.c.id).where(campaigns.c.account_id == account_id).order_by(campaigns.c.id)
    return list(conn.execute(query).scalars())


# -- rules -----------------------------------------------------------------------------------------------


def insert_rule(conn: Connection, values: dict[str, Any]) -> None:
    """Store a new rule (`values` names its columns but deleted_at)."""
    conn.execute(insert(alert_rules).values(**values))


def live_rules(conn: Connection, account_id: str) -> Sequence[RowMapping]:
    """The account's rules not deleted, newest first (every column)."""
    ar = alert_rules.c
    query = (
        select(alert_rules)
        .where(ar.account_id == account_id, ar.deleted_at.is_(None))
        .order_by(ar.created_at.desc(), ar.id.desc())
    )
    return conn.execute(query).mappings().all()


def mark_rule_deleted(conn: Connection, account_id: str, rule_id: str, at_ms: int) -> bool:
    """Set deleted_at on one live rule of the account; whether there was one."""
    ar = alert_rules.c
    query = (
        update(alert_rules)
        .where(ar.id == rule_id, ar.account_id == account_id, ar.deleted_at.is_(None))
        .values(deleted_at=at_ms)
    )
    return bool(conn.execute(query).rowcount)


# -- states --------------------------------------------------------------------------------------------


def locked_states(conn: Connection, account_id: str, campaign_ids: list[str], now: int) -> dict[str, str]:
    """Campaign id -> its stored alert state (JSON text), each row created when missing ('{}') and
    locked (PostgreSQL: FOR UPDATE, in campaign order) so two transactions evaluating one campaign
    take turns; the second then reads the first's counters and state."""
    rows = [
        {"campaign_id": c, "account_id": account_id, "state": "{}", "updated_at": now} for c in campaign_ids
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(alert_states).on_conflict_do_nothing(index_elements=["campaign_id"]), rows)
    st = alert_states.c
    query = (
        select(st.campaign_id, st.state)
        .where(st.campaign_id.in_(campaign_ids), st.account_id == account_id)
        .order_by(st.campaign_id)
        .with_for_update()
    )
    return {row.campaign_id: row.state for row in conn.execute(query)}


def save_state(conn: Connection, campaign_id: str, state: str, now: int) -> None:
    """A campaign's new alert state (JSON text)."""
    conn.execute(
        update(alert_states)
        .where(alert_states.c.campaign_id == campaign_id)
        .values(state=state, updated_at=now)
    )


# -- outbox and attempts ---------------------------------------------------------------------------------


def insert_messages(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Queue messages (each row names id, account_id, endpoint_id, campaign_id, event_type, payload,
    status, attempts, next_attempt_at, created_at)."""
    if rows:
        conn.execute(insert(webhook_outbox), rows)


def claim_due(conn: Connection, now: int, lease_until: int, limit: int) -> list[RowMapping]:
    """Up to `limit` pending messages due at `now`, oldest first, with their endpoint's url, format and
    sealed secrets, claimed: their next attempt moved to `lease_until`, so no other dispatcher takes
    them meanwhile (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite has one writer at a time), and a
    dispatcher that dies before recording the attempt leaves them due again at `lease_until`."""
    ob, ep = webhook_outbox.c, webhook_endpoints.c
    live = select(ep.id).where(ep.id == ob.endpoint_id, ep.deleted_at.is_(None)).exists()
    due = (
        select(ob.seq)
        .where(ob.status == "pending", ob.next_attempt_at <= now, live)
        .order_by(ob.next_attempt_at, ob.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    seqs = list(conn.execute(due).scalars())
    if not seqs:
        return []
    conn.execute(update(webhook_outbox).where(ob.seq.in_(seqs)).values(next_attempt_at=lease_until))
    query = (
        select(
            ob.seq,
            ob.id,
            ob.account_id,
            ob.endpoint_id,
            ob.event_type,
            ob.payload,
            ob.attempts,
            ob.created_at,
            ep.url,
            ep.format,
            ep.secret_sealed,
            ep.previous_secret_sealed,
            ep.previous_until,
        )
        .join(webhook_endpoints, ep.id == ob.endpoint_id)
        .where(ob.seq.in_(seqs))
        .order_by(ob.seq)
    )
    return list(conn.execute(query).mappings())


def record_attempt(
    conn: Connection,
    row: dict[str, Any],
    status: str,
    next_attempt_at: int | None,
    delivered_at: int | None,
) -> None:
    """One attempt (`row`: delivery_id, account_id, attempted_at, status_code, error, duration_ms) and
    the message's new state (unless it is no longer pending: its endpoint deleted meanwhile)."""
    conn.execute(insert(webhook_attempts).values(**row))
    ob = webhook_outbox.c
    conn.execute(
        update(webhook_outbox)
        .where(ob.id == row["delivery_id"], ob.status == "pending")
        .values(
            status=status,
            attempts=ob.attempts + 1,
            next_attempt_at=next_attempt_at,
            delivered_at=delivered_at,
        )
    )


def deliveries_page(
    conn: Connection,
    account_id: str,
    endpoint_id: str | None,
    status: str | None,
    limit: int,
    after: tuple[int, str] | None,
) -> Sequence[RowMapping]:
    """Up to `limit` of the account's messages (of one endpoint, in one status), newest first, after the
    keyset position `after` (created_at, id)."""
    ob = webhook_outbox.c
    query = select(webhook_outbox).where(ob.account_id == account_id)
    if endpoint_id is not None:
        query = query.where(ob.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(ob.status == status)
    if after is not None:
        created_at, delivery_id = after
        query = query.where(
            or_(ob.created_at < created_at, and_(ob.created_at == created_at, ob.id < delivery_id))
        )
    return conn.execute(query.order_by(ob.created_at.desc(), ob.id.desc()).limit(limit)).mappings().all()


def attempts_of(conn: Connection, delivery_ids: list[str]) -> dict[str, list[RowMapping]]:
    """Delivery id -> its attempts, oldest first."""
    at = webhook_attempts.c
    query = select(webhook_attempts).where(at.delivery_id.in_(delivery_ids)).order_by(at.delivery_id, at.id)
    found: dict[str, list[RowMapping]] = {d: [] for d in delivery_ids}
    for row in conn.execute(query).mappings():
        found[row["delivery_id"]].append(row)
    return found


def delivery(conn: Connection, account_id: str, delivery_id: str) -> RowMapping | None:
    """One of the account's messages (every column), or None."""
    ob = webhook_outbox.c
    query = select(webhook_outbox).where(ob.id == delivery_id, ob.account_id == account_id)
    return conn.execute(query).mappings().first()


def due_now(conn: Connection, account_id: str, delivery_id: str, now: int) -> bool:
    """Make one of the account's messages pending and due at `now` (when its endpoint is live)."""
    ob, ep = webhook_outbox.c, webhook_endpoints.c
    live = select(ep.id).where(ep.id == ob.endpoint_id, ep.deleted_at.is_(None)).exists()
    query = (
        update(webhook_outbox)
        .where(ob.id == delivery_id, ob.account_id == account_id, live)
        .values(status="pending", next_attempt_at=now)
    )
    return bool(conn.execute(query).rowcount)
