"""The alerts a committed change causes, written to the outbox in the transaction of that change.

The write path calls it inside its transaction, after the counter deltas: recordCallEvents and the
carriers' callbacks (calls/service.py) read each account's live webhook endpoints in their load's
pipeline and call `queue_alerts`; addContacts (campaigns/service.py) calls `counters_changed`, one
indexed lookup. An account without endpoints costs nothing more. For the others, each changed
campaign's alert state row is locked, its counters (with this transaction's deltas) read,
core.alerts.evaluate decides the edges, and one outbox row per message and subscribed endpoint is
inserted; so a committed trigger is never lost, and a rolled-back one never sent. The dispatcher's
timer calls `timed`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping

from callstats.alerts import queries
from callstats.core.alerts import Alert, AlertState, Rule, Snapshot, evaluate
from callstats.db import counters
from callstats.stats.response import iso_utc, stats_response


def counters_changed(conn: Connection, changed: Mapping[str, Iterable[str]], now: int) -> int:
    """Evaluate the alert rules of the campaigns whose counters this transaction moved (account id ->
    campaign ids) at `now` (epoch ms) and queue the messages; how many outbox rows were written."""
    wanted = {account: sorted(set(ids)) for account, ids in changed.items() if ids}
    if not wanted:
        return 0
    endpoints = queries.endpoints_of(conn, wanted)
    queued = 0
    for account_id in sorted({row["account_id"] for row in endpoints}):
        mine = [row for row in endpoints if row["account_id"] == account_id]
        queued += evaluate_campaigns(conn, account_id, wanted[account_id], mine, now)
    return queued


def queue_alerts(
    conn: Connection,
    account_id: str,
    campaign_ids: Iterable[str],
    endpoints: Sequence[Mapping[Any, Any]],
    now: int,
) -> int:
    """counters_changed for one account whose live endpoints were read already (the events' write path
    reads them in its load's pipeline): nothing at all when it has none."""
    changed = sorted(campaign_ids)
    if not endpoints or not changed:
        return 0
    return evaluate_campaigns(conn, account_id, changed, endpoints, now)


def evaluate_campaigns(
    conn: Connection,
    account_id: str,
    campaign_ids: list[str],
    endpoints: Sequence[Mapping[Any, Any]],
    now: int,
) -> int:
    """Evaluate the account's rules on these campaigns (states locked, counters read in this transaction)
    and queue each message to the endpoints that take it; how many outbox rows were written."""
    rules = [rule_of(row) for row in queries.live_rules(conn, account_id)]
    states = queries.locked_states(conn, account_id, campaign_ids, now)
    rows = counters.alert_rows(conn, account_id, campaign_ids)
    messages: list[dict[str, Any]] = []
    for campaign_id in campaign_ids:
        row = rows.get(campaign_id)
        if row is None:
            continue
        before = state_of(states.get(campaign_id, "{}"))
        after, alerts = evaluate(rules, before, snapshot_of(campaign_id, row), now)
        if after != before:
            queries.save_state(conn, campaign_id, state_text(after), now)
        for alert in alerts:
            payload = json.dumps(payload_of(alert, row, now), separators=(",", ":"))
            messages += [
                _message(account_id, endpoint["id"], alert, payload, now)
                for endpoint in endpoints
                if takes(endpoint, alert)
            ]
    queries.insert_messages(conn, messages)
    return len(messages)


def timed(conn: Connection, account_id: str, now: int) -> int:
    """The timer's evaluation of every campaign of an account with live endpoints: what only time
    changes (minutes_since_last_event, stalls), skipped when the account watches neither. How many
    outbox rows were written."""
    endpoints = queries.endpoints_of(conn, [account_id])
    timed_rules = any(
        row["metric"] == "minutes_since_last_event" for row in queries.live_rules(conn, account_id)
    )
    stalls = any("campaign.stalled" in row["events"].split(",") for row in endpoints)
    if not (timed_rules or stalls):  # nothing time alone changes is watched: the write path does the rest
        return 0
    campaign_ids = queries.campaign_ids(conn, account_id)
    if not campaign_ids:
        return 0
    return evaluate_campaigns(conn, account_id, campaign_ids, endpoints, now)


def takes(endpoint: Mapping[Any, Any], alert: Alert) -> bool:
    """Whether an endpoint receives this message (its event types, its campaign)."""
    if alert.type not in endpoint["events"].split(","):
        return False
    return endpoint["campaign_id"] is None or endpoint["campaign_id"] == alert.campaign_id


def _message(account_id: str, endpoint_id: str, alert: Alert, payload: str, now: int) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "account_id": account_id,
        "endpoint_id": endpoint_id,
        "campaign_id": alert.campaign_id,
        "event_type": alert.type,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def payload_of(alert: Alert, row: RowMapping, now: int) -> dict[str, Any]:
    """The Standard Webhooks payload: `type`, `timestamp` and `data` (the campaign, the rule, the
    metric's value and the full getCampaignStats object of that moment)."""
    rule = alert.rule
    stats = stats_response(counters.from_row(alert.campaign_id, row["name"], row))
    return {
        "type": alert.type,
        "timestamp": iso_utc(now),
        "data": {
            "campaign": {"campaign_id": alert.campaign_id, "name": row["name"]},
            "rule": None if rule is None else rule_shown(rule),
            "metric": None if rule is None else rule.metric,
            "value": alert.value,
            "stats": stats,
        },
    }


def rule_shown(rule: Rule) -> dict[str, Any]:
    """A rule as payloads show it."""
    return {
        "rule_id": rule.rule_id,
        "name": rule.name,
        "metric": rule.metric,
        "op": rule.op,
        "value": rule.value,
        "campaign_id": rule.campaign_id,
        "min_final_contacts": rule.min_final_contacts,
    }


def rule_of(row: Mapping[Any, Any]) -> Rule:
    """A stored rule as the core evaluates it."""
    return Rule(
        rule_id=row["id"],
        name=row["name"],
        metric=row["metric"],
        op=row["op"],
        value=float(row["value"]),
        campaign_id=row["campaign_id"],
        min_final_contacts=row["min_final_contacts"],
    )


def snapshot_of(campaign_id: str, row: Mapping[Any, Any]) -> Snapshot:
    """A campaign's alert_rows row as the core evaluates it."""
    breakdown = ("bd_answered", "bd_busy", "bd_no_answer", "bd_failed", "bd_voicemail")
    return Snapshot(
        campaign_id=campaign_id,
        total=int(row["total"] or 0),
        pending=int(row["pending"] or 0),
        in_progress=int(row["in_progress"] or 0),
        completed=int(row["completed"] or 0),
        failed=int(row["failed"] or 0),
        voicemail=int(row["bd_voicemail"] or 0),
        breakdown_total=sum(int(row[name] or 0) for name in breakdown),
        first_call_at=row["first_call_at"],
        last_final_at=row["last_final_at"],
        last_event_at=row["last_event_at"],
        stall_after_minutes=int(row["stall_after_minutes"]),
    )


def state_of(text: str) -> AlertState:
    """A stored state (JSON text; '{}' for a campaign never evaluated)."""
    stored = json.loads(text)
    return AlertState(
        rules={str(k): int(v) for k, v in stored.get("rules", {}).items()},
        completed=stored.get("completed"),
        stalled=stored.get("stalled"),
    )


def state_text(state: AlertState) -> str:
    """A state as stored."""
    return json.dumps(
        {"rules": dict(state.rules), "completed": state.completed, "stalled": state.stalled},
        separators=(",", ":"),
        sort_keys=True,
    )
