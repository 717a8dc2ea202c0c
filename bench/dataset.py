"""Bulk-built data sets: campaigns of any size written with set-based SQL, never through HTTP.

Contacts and calls are generated inside the database (a recursive CTE on SQLite,
`generate_series` on PostgreSQL) with a fixed mix of states, and each campaign's
counters row is then summed from those rows, so it agrees with them by construction
(`callstats reconcile` confirms it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text

from callstats.accounts.service import create_key
from callstats.config import sqlalchemy_url
from callstats.core.histogram import talk_bucket
from callstats.db import migrate as migrations
from callstats.db.engine import Database
from callstats.db.schema import SERIES_COLUMNS
from callstats.stats.reconcile import differences

ROOT = Path(__file__).resolve().parent.parent
CALLSTATS = ROOT / ".venv" / "bin" / "callstats"
GENERATOR_VERSION = 3
T0_MS = 1_705_395_600_000  # 2024-01-16T09:00:00Z, the seed's example start
RETRY_ON = "busy,no_answer,failed,voicemail"

# Per contact i, m = i % 20 picks its story (max_attempts = 2):
#   0-12 answered on the 1st call (completed)    13 busy, then answered (completed)
#   14-16 no_answer, then busy/voicemail/failed (failed)
#   17 1st call live (in_progress)   18 voicemail, retry due (pending)   19 never called (pending)
_M = "(i % 20)"
_S1 = f"({T0_MS} + i * 1000)"
_D1 = "(20 + i % 241)"
_E1 = f"({_S1} + 5000 + CASE WHEN {_M} <= 12 THEN {_D1} * 1000 ELSE 0 END)"
_S2 = f"({_E1} + 600000)"
_D2 = "(20 + i % 199)"
_E2 = f"({_S2} + 5000 + CASE WHEN {_M} = 13 THEN {_D2} * 1000 ELSE 0 END)"
_CALL_ID = "'c' || CAST(1000000000000 + :base + i AS TEXT) || '-'"

_CONTACT_SELECT = f"""
SELECT :base + i, :cid, :aid, '+1' || CAST(2122000000 + i AS TEXT), NULL, NULL,
  CASE WHEN {_M} <= 13 THEN 'completed' WHEN {_M} <= 16 THEN 'failed'
       WHEN {_M} = 17 THEN 'in_progress' ELSE 'pending' END,
  CASE WHEN {_M} <= 12 OR {_M} IN (17, 18) THEN 1 WHEN {_M} = 19 THEN 0 ELSE 2 END,
  CASE WHEN {_M} = 17 THEN {_CALL_ID} || '1' END,
  CASE WHEN {_M} <= 13 THEN 'answered' WHEN {_M} = 14 THEN 'busy' WHEN {_M} = 15 THEN 'voicemail'
       WHEN {_M} = 16 THEN 'failed' WHEN {_M} = 18 THEN 'voicemail' END,
  CASE WHEN {_M} <= 12 THEN {_E1} WHEN {_M} <= 16 THEN {_E2} END,
  {T0_MS},
  CASE WHEN {_M} BETWEEN 13 AND 16 THEN {_S2} WHEN {_M} <> 19 THEN {_S1} END
FROM seq"""

_FIRST_CALL_SELECT = f"""
SELECT :aid, {_CALL_ID} || '1', :cid, :base + i, 1,
  CASE WHEN {_M} = 17 THEN 'live' ELSE 'ended' END,
  CASE WHEN {_M} <= 12 THEN 'answered' WHEN {_M} = 13 THEN 'busy' WHEN {_M} <= 16 THEN 'no_answer'
       WHEN {_M} = 18 THEN 'voicemail' END,
  CASE WHEN {_M} <= 12 THEN {_D1} WHEN {_M} = 17 THEN NULL ELSE 0 END,
  {_S1}, CASE WHEN {_M} <= 12 THEN {_S1} + 5000 END, CASE WHEN {_M} <> 17 THEN {_E1} END
FROM seq WHERE {_M} <> 19"""

_SECOND_CALL_SELECT = f"""
SELECT :aid, {_CALL_ID} || '2', :cid, :base + i, 2, 'ended',
  CASE WHEN {_M} = 13 THEN 'answered' WHEN {_M} = 14 THEN 'busy' WHEN {_M} = 15 THEN 'voicemail'
       ELSE 'failed' END,
  CASE WHEN {_M} = 13 THEN {_D2} ELSE 0 END,
  {_S2}, CASE WHEN {_M} = 13 THEN {_S2} + 5000 END, {_E2}
FROM seq WHERE {_M} BETWEEN 13 AND 16"""

_PENDING_SELECT = """
SELECT :base + i, :cid, :aid, '+1' || CAST(2122000000 + i AS TEXT), NULL, NULL,
  'pending', 0, NULL, NULL, NULL, 0, NULL
FROM seq"""

_CONTACT_COLUMNS = (
    "id, campaign_id, account_id, phone, name, metadata, state, attempts, live_call_id, "
    "last_outcome, finalized_at, created_at, last_call_at"
)
_CALL_COLUMNS = (
    "account_id, call_id, campaign_id, contact_id, attempt, status, outcome, duration_seconds, "
    "started_at, answered_at, ended_at"
)
_STATES = ("pending", "in_progress", "completed", "failed")
_OUTCOMES = ("answered", "busy", "no_answer", "failed", "voicemail")

_COUNTERS_INSERT = f"""
INSERT INTO campaign_counters (campaign_id, slot, account_id, total,
  {", ".join(_STATES)}, talk_seconds, {", ".join("bd_" + o for o in _OUTCOMES)}, first_call_at, last_final_at)
SELECT CAST(:cid AS VARCHAR(36)), 0, CAST(:aid AS VARCHAR(36)), count(*),
  {", ".join(f"coalesce(sum(CASE WHEN state = '{s}' THEN 1 ELSE 0 END), 0)" for s in _STATES)},
  (SELECT coalesce(sum(duration_seconds), 0) FROM calls WHERE campaign_id = :cid AND outcome = 'answered'),
  {", ".join(f"coalesce(sum(CASE WHEN last_outcome = '{o}' THEN 1 ELSE 0 END), 0)" for o in _OUTCOMES)},
  (SELECT min(started_at) FROM calls WHERE campaign_id = :cid), max(finalized_at)
FROM contacts WHERE campaign_id = :cid"""


@dataclass
class DataSet:
    """A migrated database holding one account, its write key and campaigns by label."""

    url: str
    api_key: str = ""
    account_id: str = ""
    campaigns: dict[str, str] = field(default_factory=dict)
    first_contact: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def schema_head() -> str:
    """The newest migration revision (a cached data set from an older schema is rebuilt)."""
    config = migrations.alembic_config("sqlite://")
    return ScriptDirectory.from_config(config).get_current_head() or ""


def sqlite_url(path: Path) -> str:
    """The callstats URL of an SQLite file."""
    return f"sqlite:///{path}"


def migrate(url: str) -> None:
    """Run `callstats migrate` on a fresh database."""
    env = {**os.environ, "CALLSTATS_DATABASE_URL": url}
    subprocess.run([str(CALLSTATS), "migrate"], env=env, check=True, capture_output=True, timeout=120)


def fresh_postgres(admin_url: str, name: str) -> str:
    """Drop and recreate database `name` next to `admin_url`; its URL."""
    base = admin_url.rsplit("/", 1)[0]
    db = Database(admin_url, pool_size=1)
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db.dispose()
    return f"{base}/{name}"


def _seq(conn: Connection) -> str:
    if conn.dialect.name == "postgresql":
        return "WITH seq(i) AS (SELECT generate_series(0, CAST(:n AS BIGINT) - 1))"
    return "WITH RECURSIVE seq(i) AS (SELECT 0 WHERE 0 < :n UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :n)"


def _insert(conn: Connection, table: str, columns: str, select_sql: str, params: dict[str, object]) -> None:
    # SQLite wants the CTE after INSERT's column list; PostgreSQL accepts the same form.
    conn.execute(text(f"INSERT INTO {table} ({columns}) {_seq(conn)} {select_sql}"), params)


def _new_campaign(
    conn: Connection, data: DataSet, label: str, size: int, max_attempts: int
) -> dict[str, object]:
    campaign_id = str(uuid.uuid4())
    conn.execute(
        text(
            "INSERT INTO campaigns"
            " (id, account_id, name, max_attempts, retry_on, default_region, created_at)"
            " VALUES (:id, :aid, :name, :max, :retry, 'US', :at)"
        ),
        {
            "id": campaign_id,
            "aid": data.account_id,
            "name": f"bench {label}",
            "max": max_attempts,
            "retry": RETRY_ON,
            "at": T0_MS,
        },
    )
    top = conn.execute(text("SELECT coalesce(max(id), 0) FROM contacts")).scalar_one()
    base = (int(top) // 20 + 1) * 20  # a multiple of 20, so m = i % 20 = id % 20
    data.campaigns[label], data.first_contact[label], data.sizes[label] = campaign_id, base, size
    return {"cid": campaign_id, "aid": data.account_id, "base": base, "n": size}


def add_history_campaign(engine: Engine, data: DataSet, label: str, size: int) -> None:
    """A campaign of `size` contacts with the fixed mix of calls and states, and its counters row."""
    with engine.begin() as conn:
        params = _new_campaign(conn, data, label, size, max_attempts=2)
        _insert(conn, "contacts", _CONTACT_COLUMNS, _CONTACT_SELECT, params)
        _insert(conn, "calls", _CALL_COLUMNS, _FIRST_CALL_SELECT, params)
        _insert(conn, "calls", _CALL_COLUMNS, _SECOND_CALL_SELECT, params)
        conn.execute(text(_COUNTERS_INSERT), params)
        _extras(conn, params)


def add_event_history(engine: Engine, data: DataSet, label: str) -> None:
    """One stored `call.started` per call of a history campaign, as a database that has been ingesting has.

    Without it `call_events` is empty when the data set is analyzed, and PostgreSQL plans the
    ingestion runs' duplicate checks for an empty table until autovacuum next analyzes it.
    """
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO call_events (account_id, event_id, body_hash, campaign_id, call_id, type,"
                " occurred_at, received_at, effect)"
                " SELECT account_id, call_id || '-started', 'bench', campaign_id, call_id, 'call.started',"
                " started_at, started_at, 'applied' FROM calls WHERE campaign_id = :cid"
            ),
            {"cid": data.campaigns[label]},
        )


def add_pending_campaign(
    engine: Engine, data: DataSet, label: str, size: int, max_attempts: int = 100
) -> None:
    """A campaign of `size` never-called contacts, for ingestion runs that call them again and again."""
    with engine.begin() as conn:
        params = _new_campaign(conn, data, label, size, max_attempts=max_attempts)
        _insert(conn, "contacts", _CONTACT_COLUMNS, _PENDING_SELECT, params)
        conn.execute(text(_COUNTERS_INSERT), params)
        _extras(conn, params)


def _extras(conn: Connection, params: dict[str, object]) -> None:
    """Attempt counts, histograms and per-minute series, summed from the rows like the counters."""
    where = "WHERE campaign_id = :cid"
    outcomes: Counter[str] = Counter()
    for status, outcome, count in conn.execute(
        text(f"SELECT status, outcome, count(*) FROM calls {where} GROUP BY status, outcome"), params
    ):
        outcomes["attempts"] += count
        if status == "ended" and outcome:
            outcomes["att_" + outcome] += count
    names = ("attempts", *(f"att_{o}" for o in _OUTCOMES))
    conn.execute(
        text(f"UPDATE campaign_counters SET {', '.join(f'{n} = :{n}' for n in names)} {where} AND slot = 0"),
        {**params, **{n: outcomes[n] for n in names}},
    )
    histogram: Counter[tuple[str, int]] = Counter()
    for attempts, count in conn.execute(
        text(f"SELECT attempts, count(*) FROM contacts {where} GROUP BY attempts"), params
    ):
        histogram[("a", int(attempts))] += count
    for seconds, count in conn.execute(
        text(
            f"SELECT duration_seconds, count(*) FROM calls {where} AND status = 'ended'"
            " AND outcome = 'answered' GROUP BY duration_seconds"
        ),
        params,
    ):
        histogram[("t", talk_bucket(int(seconds or 0)))] += count
    _insert_rows(
        conn,
        "campaign_histograms",
        [
            {
                "campaign_id": params["cid"],
                "kind": kind,
                "bucket": bucket,
                "slot": 0,
                "account_id": params["aid"],
                "count": count,
            }
            for (kind, bucket), count in histogram.items()
        ],
    )
    _series(conn, params)


def _series(conn: Connection, params: dict[str, object]) -> None:
    where = "WHERE campaign_id = :cid"
    minutes: dict[int, Counter[str]] = {}
    for minute, count in conn.execute(
        text(f"SELECT started_at / 60000, count(*) FROM calls {where} GROUP BY started_at / 60000"), params
    ):
        minutes.setdefault(int(minute), Counter())["starts"] += count
    for minute, outcome, count, talk in conn.execute(
        text(
            f"SELECT ended_at / 60000, outcome, count(*), sum(duration_seconds) FROM calls {where}"
            " AND status = 'ended' AND outcome IS NOT NULL GROUP BY ended_at / 60000, outcome"
        ),
        params,
    ):
        bucket = minutes.setdefault(int(minute), Counter())
        bucket[outcome] += count
        if outcome == "answered":
            bucket["talk_seconds"] += int(talk or 0)
    for minute, count in conn.execute(
        text(
            f"SELECT finalized_at / 60000, count(*) FROM contacts {where} AND state = 'failed'"
            " AND finalized_at IS NOT NULL GROUP BY finalized_at / 60000"
        ),
        params,
    ):
        minutes.setdefault(int(minute), Counter())["finals_failed"] += count
    _insert_rows(
        conn,
        "campaign_timeseries",
        [
            {
                "campaign_id": params["cid"],
                "minute": minute,
                "slot": 0,
                "account_id": params["aid"],
                **{name: counts[name] for name in SERIES_COLUMNS},
            }
            for minute, counts in minutes.items()
        ],
    )


def _insert_rows(conn: Connection, table: str, rows: list[dict[str, object]]) -> None:
    if rows:
        columns = list(rows[0])
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
        conn.execute(text(sql), rows)


def finish(engine: Engine) -> None:
    """Align PostgreSQL's id sequence with the explicit ids and refresh planner statistics."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('contacts', 'id'), "
                    "(SELECT coalesce(max(id), 1) FROM contacts))"
                )
            )
            conn.commit()
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def loader_engine(url: str) -> Engine:
    """An engine for bulk loading: on SQLite, no journal and no fsync (a crash means a rebuild)."""
    if not url.startswith("sqlite"):
        return create_engine(sqlalchemy_url(url))
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _fast(dbapi_conn: Any, _record: Any) -> None:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000", "temp_store=MEMORY"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    return engine


def open_dataset(url: str) -> tuple[Engine, DataSet]:
    """`callstats migrate` on a fresh database, an account with a write key, and a loading engine."""
    migrate(url)
    db = Database(url, pool_size=1)
    created = create_key(db, "bench", "write")
    db.dispose()
    data = DataSet(url=url, api_key=created.plaintext, account_id=created.account_id)
    return loader_engine(url), data


def close_loader(engine: Engine) -> None:
    """Hand the database back in the journal mode the server uses."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    engine.dispose()


def check_consistent(engine: Engine, data: DataSet, max_size: int) -> None:
    """Fail unless every campaign up to `max_size` contacts reconciles with its counters exactly."""
    with engine.connect() as conn:
        for label, campaign_id in data.campaigns.items():
            if data.sizes[label] <= max_size:
                found = differences(conn, campaign_id)
                if found:
                    fields = ", ".join(diff.field for diff in found)
                    raise SystemExit(f"bench data set {label}: stored figures disagree with rows on {fields}")


def cached_sqlite(path: Path, sizes: dict[str, int], log: bool = True) -> DataSet:
    """The SQLite read data set at `path`, rebuilt unless a matching one is cached there."""
    meta = path.with_suffix(".json")
    wanted = {"version": GENERATOR_VERSION, "schema": schema_head(), "sizes": sizes}
    if path.exists() and meta.exists():
        saved = json.loads(meta.read_text())
        if saved.get("wanted") == wanted:
            return DataSet(**saved["data"])
    for stale in (path, meta, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine, data = open_dataset(sqlite_url(path))
    for label, size in sizes.items():
        if log:
            print(f"  building {label} ({size:,} contacts) in {path.name}", file=sys.stderr, flush=True)
        add_history_campaign(engine, data, label, size)
    finish(engine)
    check_consistent(engine, data, max_size=100_000)
    close_loader(engine)
    meta.write_text(json.dumps({"wanted": wanted, "data": asdict(data)}))
    return data


def one_pending_campaign(url: str, label: str, pool: int) -> DataSet:
    """A migrated database (an SQLite file or a fresh PostgreSQL database) whose one campaign, `label`,
    holds `pool` pending contacts: what a single ingestion case calls."""
    engine, data = open_dataset(url)
    add_pending_campaign(engine, data, label, pool)
    finish(engine)
    check_consistent(engine, data, max_size=pool)
    close_loader(engine)
    return data
