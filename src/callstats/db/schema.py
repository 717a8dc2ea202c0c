"""The tables, as SQLAlchemy Core; one schema for SQLite and PostgreSQL.

Every table carries `account_id` or `campaign_id` so the schema can be
distributed by account on a sharded PostgreSQL. Times are epoch milliseconds.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

BigId = BigInteger().with_variant(Integer, "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("scope", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("retry_on", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # ISO 3166-1 alpha-2: the region of the campaign's numbers written without +country
    Column("default_region", String(2), nullable=False),
    # Minutes without an applied event after which a campaign with work left is `stalled` (core/status.py)
    Column("stall_after_minutes", Integer, nullable=False, server_default="30"),
    Index("ix_campaigns_account_created", "account_id", "created_at", "id"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False),
    Column("account_id", String(36), nullable=False),
    # The contact's identity: E.164 plus any extension in RFC 3966 form, "+16085550147;ext=12";
    # NULL once erased (forgetContact), with the name and metadata
    Column("phone", String(64), nullable=True),
    Column("name", String(200), nullable=True),
    Column("metadata", Text, nullable=True),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("live_call_id", String(128), nullable=True),
    Column("last_outcome", String(12), nullable=True),
    Column("finalized_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("erased_at", BigInteger, nullable=True),
    # the start of its latest attempt (that call's started_at), kept by core/lifecycle.py
    Column("last_call_at", BigInteger, nullable=True),
    UniqueConstraint("campaign_id", "phone"),
    # keyset pages of one campaign's contacts in id order, whole or filtered (reports/queries.py)
    Index("ix_contacts_campaign_order", "campaign_id", "id"),
    Index("ix_contacts_campaign_state", "campaign_id", "state", "id"),
    Index("ix_contacts_campaign_outcome", "campaign_id", "last_outcome", "id"),
    Index("ix_contacts_campaign_state_outcome", "campaign_id", "state", "last_outcome", "id"),
)

calls = Table(
    "calls",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("call_id", String(128), primary_key=True),
    Column("campaign_id", String(36), nullable=False),
    Column("contact_id", BigId, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(8), nullable=False),
    Column("outcome", String(12), nullable=True),
    Column("duration_seconds", Integer, nullable=True),
    Column("started_at", BigInteger, nullable=False),
    Column("answered_at", BigInteger, nullable=True),
    Column("ended_at", BigInteger, nullable=True),
    # Whether started_at comes from a call.started (else from the event that opened the call)
    Column("start_reported", Boolean, nullable=False, server_default=false()),
    # The carrier's own outcome, "<provider>:<raw value>" (twilio:no-answer), when the call.ended had one
    Column("raw_outcome", String(160), nullable=True),
    Index("ix_calls_campaign_contact", "campaign_id", "contact_id", "attempt"),
    # keyset pages of one campaign's calls, newest first, whole or by outcome (reports/queries.py)
    Index("ix_calls_campaign_started", "campaign_id", "started_at", "call_id"),
    Index("ix_calls_campaign_outcome_started", "campaign_id", "outcome", "started_at", "call_id"),
)

call_events = Table(
    "call_events",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("body_hash", String(64), nullable=False),
    Column("campaign_id", String(36), nullable=False),
    Column("call_id", String(128), nullable=False),
    Column("type", String(16), nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("effect", String(16), nullable=False),
)

# A carrier account's link to callstats: its webhooks are /webhooks/<provider>/<id>. The provider's
# signing secret is stored sealed (callstats/sealing.py); outcome_map is JSON {raw status: outcome}.
# Deleting one sets deleted_at, so the callbacks stored for it keep their connection.
carrier_connections = Table(
    "carrier_connections",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("name", String(200), nullable=True),
    Column("secret_sealed", Text, nullable=False),
    Column("outcome_map", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    Index("ix_carrier_connections_account_created", "account_id", "created_at", "id"),
)

# Every carrier callback whose signature held, kept raw (query string, the headers that matter as
# JSON, body) with its verdict: pending, applied, duplicate or unmatched (with its reason).
carrier_callbacks = Table(
    "carrier_callbacks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("connection_id", String(36), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("campaign_id", String(36), nullable=True),
    Column("call_id", String(128), nullable=True),
    Column("received_at", BigInteger, nullable=False),
    Column("query", Text, nullable=False),
    Column("headers", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("applied_at", BigInteger, nullable=True),
    # keyset pages of one account's unmatched callbacks, of one connection or all
    Index(
        "ix_carrier_callbacks_account_verdict", "account_id", "verdict", "connection_id", "received_at", "id"
    ),
)

# Alerting (issue 13, callstats/alerts/). A webhook endpoint of an account: its signing secret sealed
# (sealing.py), the previous one kept signing until previous_until after a rotation; events is the
# comma-separated list of event types it receives; campaign_id limits it to one campaign.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", String(200), nullable=False),
    Column("campaign_id", String(36), nullable=True),
    Column("format", String(8), nullable=False),
    Column("secret_sealed", Text, nullable=False),
    Column("previous_secret_sealed", Text, nullable=True),
    Column("previous_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    # the write path's one lookup per account and group: the account's live endpoints
    Index("ix_webhook_endpoints_account_deleted", "account_id", "deleted_at"),
)

# A threshold rule: `metric op value` on a campaign's stats (every campaign of the account when
# campaign_id is NULL), quiet until min_final_contacts contacts are final.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("campaign_id", String(36), nullable=True),
    Column("name", String(200), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("op", String(2), nullable=False),
    Column("value", Float, nullable=False),
    Column("min_final_contacts", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    Index("ix_alert_rules_account_deleted", "account_id", "deleted_at"),
)

# What the edge-triggered evaluation remembers of one campaign: JSON {"rules": {rule id: triggered at
# ms}, "completed": ms or null, "stalled": ms or null}. The row is also the lock that serializes two
# transactions evaluating the same campaign (PostgreSQL: SELECT ... FOR UPDATE).
alert_states = Table(
    "alert_states",
    metadata,
    Column("campaign_id", String(36), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("state", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# The outbox: one row per message and endpoint, written in the transaction that moved the counters.
# `id` is the Standard Webhooks webhook-id (the same on every attempt); `seq` orders sending.
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("account_id", String(36), nullable=False),
    Column("endpoint_id", String(36), nullable=False),
    Column("campaign_id", String(36), nullable=True),
    Column("event_type", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(10), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Index("ix_webhook_outbox_due", "status", "next_attempt_at", "seq"),
    Index("ix_webhook_outbox_account_created", "account_id", "created_at", "id"),
)

# Every delivery attempt: when, the answer's status code or the error, how long it took.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("attempted_at", BigInteger, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(300), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)

# Per-campaign counters, split into slots so concurrent writers rarely share a row;
# a read sums a campaign's slots (a fixed, small number of rows).
campaign_counters = Table(
    "campaign_counters",
    metadata,
    Column("campaign_id", String(36), primary_key=True),
    Column("slot", SmallInteger, primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("total", BigInteger, nullable=False, default=0),
    Column("pending", BigInteger, nullable=False, default=0),
    Column("in_progress", BigInteger, nullable=False, default=0),
    Column("completed", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("talk_seconds", BigInteger, nullable=False, default=0),
    Column("bd_answered", BigInteger, nullable=False, default=0),
    Column("bd_busy", BigInteger, nullable=False, default=0),
    Column("bd_no_answer", BigInteger, nullable=False, default=0),
    Column("bd_failed", BigInteger, nullable=False, default=0),
    Column("bd_voicemail", BigInteger, nullable=False, default=0),
    Column("first_call_at", BigInteger, nullable=True),
    Column("last_final_at", BigInteger, nullable=True),
    Column("attempts", BigInteger, nullable=False, default=0, server_default="0"),
    Column("att_answered", BigInteger, nullable=False, default=0, server_default="0"),
    Column("att_busy", BigInteger, nullable=False, default=0, server_default="0"),
    Column("att_no_answer", BigInteger, nullable=False, default=0, server_default="0"),
    Column("att_failed", BigInteger, nullable=False, default=0, server_default="0"),
    Column("att_voicemail", BigInteger, nullable=False, default=0, server_default="0"),
    # The server's clock when an event last changed a call or contact of the campaign (the slot keeps the MAX)
    Column("last_event_at", BigInteger, nullable=True),
)

# Fixed-bucket histograms per campaign: kind "a" = contacts by attempts made, "t" = answered calls by
# talk-time bucket (core/histogram.py). Slotted like the counters.
campaign_histograms = Table(
    "campaign_histograms",
    metadata,
    Column("campaign_id", String(36), primary_key=True),
    Column("kind", String(1), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("slot", SmallInteger, primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("count", BigInteger, nullable=False, default=0),
)

# Ended calls by raw carrier outcome ("twilio:no-answer"), per campaign: one row per raw outcome seen
# and slot, slotted like the counters (getCampaignStats?include=raw_outcomes sums them).
campaign_raw_outcomes = Table(
    "campaign_raw_outcomes",
    metadata,
    Column("campaign_id", String(36), primary_key=True),
    Column("raw_outcome", String(160), primary_key=True),
    Column("slot", SmallInteger, primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("calls", BigInteger, nullable=False, default=0),
)

# Per-minute (UTC epoch minute) counts, written with the events; hours and days in any time zone are
# sums of minutes.
campaign_timeseries = Table(
    "campaign_timeseries",
    metadata,
    Column("campaign_id", String(36), primary_key=True),
    Column("minute", BigInteger, primary_key=True),
    Column("slot", SmallInteger, primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("starts", BigInteger, nullable=False, default=0),
    Column("answered", BigInteger, nullable=False, default=0),
    Column("busy", BigInteger, nullable=False, default=0),
    Column("no_answer", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("voicemail", BigInteger, nullable=False, default=0),
    Column("talk_seconds", BigInteger, nullable=False, default=0),
    Column("finals_failed", BigInteger, nullable=False, default=0),
)

SERIES_COLUMNS: tuple[str, ...] = (
    "starts",
    "answered",
    "busy",
    "no_answer",
    "failed",
    "voicemail",
    "talk_seconds",
    "finals_failed",
)

COUNTER_COLUMNS: tuple[str, ...] = (
    "total",
    "pending",
    "in_progress",
    "completed",
    "failed",
    "talk_seconds",
    "bd_answered",
    "bd_busy",
    "bd_no_answer",
    "bd_failed",
    "bd_voicemail",
    "attempts",
    "att_answered",
    "att_busy",
    "att_no_answer",
    "att_failed",
    "att_voicemail",
)
