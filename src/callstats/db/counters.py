"""All counter SQL, writes and reads, on both backends: campaign_counters, campaign_histograms,
campaign_timeseries and campaign_raw_outcomes.

Counters are kept in slots (db/engine.Database.pick_slot): a write adds a core.counters.CounterDelta
to one slot of each table, in the transaction of the rows it summarizes; a read sums a campaign's
slots. Rows come back as named tuples or mappings, never sliced by position. Sections: the summed
columns; the write; the stats read (key and counters in one query); the per-campaign reads (counters,
histograms, raw outcomes, minutes, the campaign list's figures, what reconcile compares).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    RowMapping,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from callstats.core.counters import CounterDelta, Counters
from callstats.core.outcomes import OUTCOMES
from callstats.core.status import Progress
from callstats.db.driver import Statement
from callstats.db.engine import Database
from callstats.db.schema import (
    COUNTER_COLUMNS,
    SERIES_COLUMNS,
    api_keys,
    calls,
    campaign_counters,
    campaign_histograms,
    campaign_raw_outcomes,
    campaign_timeseries,
    campaigns,
)


def summed_columns() -> list[Any]:
    """The aggregate expressions that turn a campaign's slots into one row."""
    cc = campaign_counters.c
    sums = [func.coalesce(func.sum(cc[name]), literal_column("0")).label(name) for name in COUNTER_COLUMNS]
    return [
        *sums,
        func.min(cc.first_call_at).label("first_call_at"),
        func.max(cc.last_final_at).label("last_final_at"),
    ]


def counters_select(campaign_id: str) -> Select[Any]:
    """One row of summed counters for a campaign (NULL sums when it has no slots)."""
    cc = campaign_counters.c
    return select(*summed_columns()).where(cc.campaign_id == campaign_id)


def from_row(campaign_id: str, campaign_name: str, row: Mapping[str, Any] | RowMapping) -> Counters:
    """Counters from a row holding the summed columns."""
    return Counters(
        campaign_id=campaign_id,
        campaign_name=campaign_name,
        total=int(row["total"] or 0),
        pending=int(row["pending"] or 0),
        in_progress=int(row["in_progress"] or 0),
        completed=int(row["completed"] or 0),
        failed=int(row["failed"] or 0),
        talk_seconds=int(row["talk_seconds"] or 0),
        breakdown={o: int(row["bd_" + o] or 0) for o in OUTCOMES},
        first_call_at=row["first_call_at"],
        last_final_at=row["last_final_at"],
    )


def read(conn: Connection, account_id: str, campaign_id: str) -> Counters | None:
    """A campaign's counters, or None when the account has no such campaign."""
    name = conn.execute(
        select(campaigns.c.name).where(campaigns.c.id == campaign_id, campaigns.c.account_id == account_id)
    ).scalar()
    if name is None:
        return None
    row = conn.execute(counters_select(campaign_id)).mappings().one()
    return from_row(campaign_id, name, row)


def _earliest(current: Any, incoming: Any) -> Any:
    """The earlier of two nullable times, in SQL both dialects speak."""
    return case(
        (incoming.is_(None), current),
        (current.is_(None), incoming),
        (incoming < current, incoming),
        else_=current,
    )


def _latest(current: Any, incoming: Any) -> Any:
    """The later of two nullable times."""
    return case(
        (incoming.is_(None), current),
        (current.is_(None), incoming),
        (incoming > current, incoming),
        else_=current,
    )


@functools.cache
def _upserts(dialect_name: str) -> tuple[Statement, Statement, Statement, Statement]:
    """The four add-to-slot statements (counters, histograms, minutes, raw outcomes), built once per
    dialect (and run on the driver's connection)."""
    dialect: Any = postgresql if dialect_name == "postgresql" else sqlite
    cc, h, ts, r = campaign_counters.c, campaign_histograms.c, campaign_timeseries.c, campaign_raw_outcomes.c
    counters_stmt = dialect.insert(campaign_counters)
    counters_set = {name: cc[name] + counters_stmt.excluded[name] for name in COUNTER_COLUMNS}
    counters_set["first_call_at"] = _earliest(cc.first_call_at, counters_stmt.excluded.first_call_at)
    counters_set["last_final_at"] = _latest(cc.last_final_at, counters_stmt.excluded.last_final_at)
    counters_set["last_event_at"] = _latest(cc.last_event_at, counters_stmt.excluded.last_event_at)
    histogram_stmt = dialect.insert(campaign_histograms)
    series_stmt = dialect.insert(campaign_timeseries)
    raw_stmt = dialect.insert(campaign_raw_outcomes)
    return (
        Statement(
            counters_stmt.on_conflict_do_update(index_elements=[cc.campaign_id, cc.slot], set_=counters_set),
            [c.name for c in campaign_counters.c],
        ),
        Statement(
            histogram_stmt.on_conflict_do_update(
                index_elements=[h.campaign_id, h.kind, h.bucket, h.slot],
                set_={"count": h.count + histogram_stmt.excluded["count"]},
            ),
            [c.name for c in campaign_histograms.c],
        ),
        Statement(
            series_stmt.on_conflict_do_update(
                index_elements=[ts.campaign_id, ts.minute, ts.slot],
                set_={name: ts[name] + series_stmt.excluded[name] for name in SERIES_COLUMNS},
            ),
            [c.name for c in campaign_timeseries.c],
        ),
        Statement(
            raw_stmt.on_conflict_do_update(
                index_elements=[r.campaign_id, r.raw_outcome, r.slot],
                set_={"calls": r.calls + raw_stmt.excluded.calls},
            ),
            [c.name for c in campaign_raw_outcomes.c],
        ),
    )


def write(conn: Connection, account_id: str, campaign_id: str, slot: int, delta: CounterDelta) -> None:
    """Add `delta` to one slot of a campaign's counters, histograms, minutes and raw outcomes, creating
    rows as needed."""
    counters_upsert, histogram_upsert, series_upsert, raw_upsert = _upserts(conn.dialect.name)
    histogram_rows = _histogram_rows(account_id, campaign_id, slot, delta.histogram)
    if histogram_rows:
        histogram_upsert.executemany(conn, histogram_rows)
    series_rows = _series_rows(account_id, campaign_id, slot, delta.series)
    if series_rows:
        series_upsert.executemany(conn, series_rows)
    raw_rows = [
        {"campaign_id": campaign_id, "raw_outcome": raw, "slot": slot, "account_id": account_id, "calls": n}
        for raw, n in sorted(delta.raw_outcomes.items())
        if n
    ]
    if raw_rows:
        raw_upsert.executemany(conn, raw_rows)
    if not delta and not delta.ensure_row:
        return
    values: dict[str, Any] = dict.fromkeys(COUNTER_COLUMNS, 0)
    values.update(delta.columns)
    values.update(
        campaign_id=campaign_id,
        slot=slot,
        account_id=account_id,
        first_call_at=delta.first_call_at,
        last_final_at=delta.last_final_at,
        last_event_at=delta.last_event_at,
    )
    counters_upsert.execute(conn, values)


def _histogram_rows(
    account_id: str, campaign_id: str, slot: int, histogram: Mapping[tuple[str, int], int]
) -> list[dict[str, Any]]:
    return [
        {
            "campaign_id": campaign_id,
            "kind": kind,
            "bucket": bucket,
            "slot": slot,
            "account_id": account_id,
            "count": n,
        }
        for (kind, bucket), n in sorted(histogram.items())
        if n
    ]


def _series_rows(
    account_id: str, campaign_id: str, slot: int, series: Mapping[tuple[int, str], int]
) -> list[dict[str, Any]]:
    minutes: dict[int, dict[str, int]] = {}
    for (minute, column), n in series.items():
        if n:
            minutes.setdefault(minute, dict.fromkeys(SERIES_COLUMNS, 0))[column] += n
    return [
        {"campaign_id": campaign_id, "minute": minute, "slot": slot, "account_id": account_id, **counts}
        for minute, counts in sorted(minutes.items())
    ]


def key_and_counters_select(key_id: Any = None, campaign_id: Any = None) -> Select[Any]:
    """One round trip for a stats read: the key, the campaign if the key's account owns it, its counters.

    `key_id` and `campaign_id` are bind parameters of those names unless other expressions are given.
    """
    k, c, cc = api_keys.c, campaigns.c, campaign_counters.c
    key_id = bindparam("key_id") if key_id is None else key_id
    campaign_id = bindparam("campaign_id") if campaign_id is None else campaign_id
    joined = api_keys.outerjoin(campaigns, and_(c.id == campaign_id, c.account_id == k.account_id)).outerjoin(
        campaign_counters, cc.campaign_id == c.id
    )
    return (
        select(
            k.account_id,
            k.secret_hash,
            k.scope,
            k.revoked_at,
            c.name.label("campaign_name"),
            *summed_columns(),
        )
        .select_from(joined)
        .where(k.id == key_id)
        .group_by(k.account_id, k.secret_hash, k.scope, k.revoked_at, c.name)
    )


class KeyAndCounters(NamedTuple):
    """One stats read's row (key_and_counters_select): the key, and the campaign's name and summed
    counters when the key's account owns it (campaign_name None otherwise). Times are epoch ms."""

    account_id: str
    secret_hash: str
    scope: str
    revoked_at: int | None
    campaign_name: str | None
    total: int
    pending: int
    in_progress: int
    completed: int
    failed: int
    talk_seconds: int
    bd_answered: int
    bd_busy: int
    bd_no_answer: int
    bd_failed: int
    bd_voicemail: int
    attempts: int
    att_answered: int
    att_busy: int
    att_no_answer: int
    att_failed: int
    att_voicemail: int
    first_call_at: int | None
    last_final_at: int | None

    @property
    def key(self) -> tuple[str, str, str, int | None]:
        """(account_id, secret_hash, scope, revoked_at): what accounts.service.checked_key takes."""
        return self.account_id, self.secret_hash, self.scope, self.revoked_at

    def counters(self, campaign_id: str) -> Counters:
        """The campaign's counter values (call only when campaign_name is not None)."""
        return from_row(campaign_id, self.campaign_name or "", self._asdict())


HOT_COLUMNS = KeyAndCounters._fields
assert HOT_COLUMNS[5:-2] == COUNTER_COLUMNS, "KeyAndCounters must list the counter columns in order"


def histograms(conn: Connection, campaign_id: str) -> dict[str, dict[int, int]]:
    """A campaign's histograms summed over slots: {"a": {attempts: contacts}, "t": {bucket: calls}}."""
    h = campaign_histograms.c
    query = (
        select(h.kind, h.bucket, func.sum(h.count))
        .where(h.campaign_id == campaign_id)
        .group_by(h.kind, h.bucket)
    )
    found: dict[str, dict[int, int]] = {"a": {}, "t": {}}
    for kind, bucket, count in conn.execute(query):
        if count:
            found.setdefault(kind, {})[int(bucket)] = int(count)
    return found


def raw_outcomes(conn: Connection, campaign_id: str) -> dict[str, int]:
    """A campaign's ended calls by raw carrier outcome, summed over slots: {"twilio:busy": calls}, in code
    point order of the raw outcome (the same on both backends, whatever their collation), those with no
    call left out."""
    r = campaign_raw_outcomes.c
    query = (
        select(r.raw_outcome, func.sum(r.calls)).where(r.campaign_id == campaign_id).group_by(r.raw_outcome)
    )
    counted = sorted((str(raw), int(calls or 0)) for raw, calls in conn.execute(query))
    return {raw: calls for raw, calls in counted if calls}


ATTEMPT_COLUMNS = ("attempts", *(f"att_{o}" for o in OUTCOMES))


def attempt_columns(conn: Connection, campaign_id: str) -> dict[str, int]:
    """A campaign's attempt counters summed over slots: {"attempts": n, "att_<outcome>": n}."""
    cc = campaign_counters.c
    row = conn.execute(
        select(*(func.sum(cc[name]).label(name) for name in ATTEMPT_COLUMNS)).where(
            cc.campaign_id == campaign_id
        )
    ).one()
    return {name: int(row._mapping[name] or 0) for name in ATTEMPT_COLUMNS}


def batched_stats_sql(db: Database) -> str:
    """PostgreSQL: the stats query (key_and_counters_select) for many (key id, campaign id) pairs, sent
    as two arrays (%(key_ids)s, %(campaign_ids)s); each row starts with its place among the pairs (n,
    from 1) followed by the KeyAndCounters columns."""
    one = key_and_counters_select(literal_column("asked.key_id"), literal_column("asked.campaign_id"))
    return (
        "SELECT asked.n, hot.* FROM unnest(%(key_ids)s::text[], %(campaign_ids)s::text[])"
        " WITH ORDINALITY AS asked(key_id, campaign_id, n)"
        f" CROSS JOIN LATERAL ({one.compile(dialect=db.engine.dialect)}) AS hot"
    )


_FIRST_CALL_REDONE = Statement(
    update(campaign_counters)
    .where(campaign_counters.c.campaign_id == bindparam("b_campaign"))
    .values(
        first_call_at=case(
            (
                campaign_counters.c.slot == bindparam("b_slot"),
                select(func.min(calls.c.started_at))
                .where(calls.c.campaign_id == bindparam("b_campaign"))
                .scalar_subquery(),
            ),
            else_=None,
        )
    )
)


def redo_first_call(conn: Connection, campaign_id: str, slot: int) -> None:
    """Recompute a campaign's first call start from its calls, after a call's start moved later.

    A MIN cannot be undone by a delta: the slot `slot` (already written in this transaction) gets
    MIN(calls.started_at) and the other slots none. Rare: only a call.started that arrives after
    the event that opened its call and carries a later time moves a start later.
    """
    _FIRST_CALL_REDONE.execute(conn, {"b_campaign": campaign_id, "b_slot": slot})


def _sum(column: Any) -> Any:
    """SUM(column), 0 when no row."""
    return func.coalesce(func.sum(column), literal_column("0"))


SUMMARY_FIELDS = ("total", "pending", "in_progress", "completed", "failed")


def summaries(conn: Connection, account_id: str, campaign_ids: list[str]) -> dict[str, RowMapping]:
    """Campaign id -> its summed counters (`SUMMARY_FIELDS`, by name) and times (`first_call_at`, the
    MIN over slots; `last_final_at`, `last_event_at`, the MAX) for the account's campaigns among
    `campaign_ids`, in one query by primary key.

    Every campaign has its counters rows from creation on, so a campaign of the account is never
    missing; an id of another account or of no campaign matches no row.
    """
    cc = campaign_counters.c
    query = (
        select(
            cc.campaign_id,
            *(_sum(cc[name]).label(name) for name in SUMMARY_FIELDS),
            func.min(cc.first_call_at).label("first_call_at"),
            func.max(cc.last_final_at).label("last_final_at"),
            func.max(cc.last_event_at).label("last_event_at"),
        )
        .where(cc.campaign_id.in_(campaign_ids), cc.account_id == account_id)
        .group_by(cc.campaign_id)
    )
    return {row["campaign_id"]: row for row in conn.execute(query).mappings()}


def progress(row: RowMapping) -> Progress:
    """A `summaries` row as what a campaign's status is computed from (core.status)."""
    return Progress(
        total=int(row["total"]),
        pending=int(row["pending"]),
        in_progress=int(row["in_progress"]),
        first_call_at=row["first_call_at"],
        last_final_at=row["last_final_at"],
        last_event_at=row["last_event_at"],
    )


def minute_span(conn: Connection, campaign_id: str) -> tuple[int | None, int | None]:
    """The first and the last UTC epoch minute the campaign's series has a row for (None, None: none)."""
    ts = campaign_timeseries.c
    first, last = conn.execute(
        select(func.min(ts.minute), func.max(ts.minute)).where(ts.campaign_id == campaign_id)
    ).one()
    return first, last


def minutes(conn: Connection, campaign_id: str, first: int, end: int) -> list[tuple[int, dict[str, int]]]:
    """The campaign's series summed over slots, minute by minute for minutes `first` <= m < `end` (UTC
    epoch minutes): [(minute, {series column: count})], in no particular order."""
    ts = campaign_timeseries.c
    query = (
        select(ts.minute, *(func.sum(ts[name]).label(name) for name in SERIES_COLUMNS))
        .where(ts.campaign_id == campaign_id, ts.minute >= first, ts.minute < end)
        .group_by(ts.minute)
    )
    return [
        (int(row.minute), {name: int(row._mapping[name] or 0) for name in SERIES_COLUMNS})
        for row in conn.execute(query)
    ]


def alert_rows(conn: Connection, account_id: str, campaign_ids: list[str]) -> dict[str, RowMapping]:
    """Campaign id -> what alert rules are evaluated on (core/alerts.Snapshot) and the stats object
    is built from: every summed counter column, first_call_at (MIN), last_final_at and last_event_at
    (MAX), the campaign's name and stall_after_minutes; one query for the account's campaigns among
    `campaign_ids` (inside a write transaction it sees that transaction's own deltas)."""
    cc = campaign_counters.c
    query = (
        select(
            cc.campaign_id,
            campaigns.c.name,
            campaigns.c.stall_after_minutes,
            *summed_columns(),
            func.max(cc.last_event_at).label("last_event_at"),
        )
        .join(campaigns, campaigns.c.id == cc.campaign_id)
        .where(cc.campaign_id.in_(campaign_ids), cc.account_id == account_id)
        .group_by(cc.campaign_id, campaigns.c.name, campaigns.c.stall_after_minutes)
    )
    return {row["campaign_id"]: row for row in conn.execute(query).mappings()}
