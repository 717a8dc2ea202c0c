"""Alert rules evaluated on a campaign's numbers, edge-triggered. Pure.

`evaluate(rules, state, snapshot, now_ms)` returns the state after the snapshot and the messages it
causes: `alert.triggered` when a rule's condition becomes true for the campaign, `alert.resolved`
when it stops being true (never repeated while it stays as it is), `campaign.completed` when the
campaign becomes completed and `campaign.stalled` when it becomes stalled (core/status.py's rules;
each again after it stopped being so). The write path calls it on every committed change of the
campaign's counters, the dispatcher on a timer (for `minutes_since_last_event` and stalls).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal, get_args

from callstats.core.rates import percent, round_half_up
from callstats.core.status import MINUTE_MS, Progress, campaign_status

Metric = Literal[
    "success_rate",
    "calls_failed",
    "calls_completed",
    "completion_percent",
    "voicemail_percent",
    "calls_in_progress",
    "minutes_since_last_event",
]
METRICS: Final[tuple[str, ...]] = get_args(Metric)
Op = Literal["<", "<=", ">", ">="]
OPS: Final[tuple[str, ...]] = get_args(Op)
EventType = Literal["alert.triggered", "alert.resolved", "campaign.completed", "campaign.stalled"]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)
_COMPARE: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Rule:
    """`metric op value` on one campaign (`campaign_id`) or every campaign of the account (None); a
    rule with `min_final_contacts` stays false until that many contacts are final."""

    rule_id: str
    name: str
    metric: str
    op: str
    value: float
    campaign_id: str | None = None
    min_final_contacts: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """A campaign's numbers at one moment (times in epoch ms, the server's clock)."""

    campaign_id: str
    total: int = 0
    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    voicemail: int = 0  # final contacts whose last outcome is voicemail (call_status_breakdown)
    breakdown_total: int = 0  # the call_status_breakdown's sum
    first_call_at: int | None = None
    last_final_at: int | None = None
    last_event_at: int | None = None
    stall_after_minutes: int = 30


@dataclass(frozen=True)
class AlertState:
    """What the evaluation remembers of a campaign: the rules triggered (id -> since, epoch ms) and since
    when it is completed or stalled (None: it is not)."""

    rules: Mapping[str, int] = field(default_factory=dict)
    completed: int | None = None
    stalled: int | None = None


@dataclass(frozen=True)
class Alert:
    """One message to send: its type, the rule (for alert.*) and the metric's value then."""

    type: str
    campaign_id: str
    rule: Rule | None = None
    value: float | None = None


def metric_value(metric: str, snapshot: Snapshot, now_ms: int) -> float | None:
    """The metric's value for the snapshot at `now_ms`; None when it has none yet (a rate with no final
    contact, minutes since an event when none happened)."""
    final = snapshot.completed + snapshot.failed
    if metric == "success_rate":
        return percent(snapshot.completed, final)
    if metric == "calls_failed":
        return float(snapshot.failed)
    if metric == "calls_completed":
        return float(snapshot.completed)
    if metric == "calls_in_progress":
        return float(snapshot.in_progress)
    if metric == "completion_percent":
        return percent(final, snapshot.total)
    if metric == "voicemail_percent":
        return percent(snapshot.voicemail, snapshot.breakdown_total)
    if metric == "minutes_since_last_event":
        last = snapshot.last_event_at
        return float(round_half_up(Decimal(now_ms - last) / MINUTE_MS, 2)) if last is not None else None
    raise ValueError(f"unknown metric {metric!r}")


def holds(rule: Rule, snapshot: Snapshot, now_ms: int) -> tuple[bool, float | None]:
    """Whether the rule's condition is true for the snapshot, and the metric's value."""
    value = metric_value(rule.metric, snapshot, now_ms)
    if value is None:
        return False, None
    if rule.min_final_contacts is not None and snapshot.completed + snapshot.failed < rule.min_final_contacts:
        return False, value
    return _COMPARE[rule.op](value, rule.value), value


def applies(rule: Rule, campaign_id: str) -> bool:
    """Whether the rule watches this campaign."""
    return rule.campaign_id is None or rule.campaign_id == campaign_id


def evaluate(
    rules: Sequence[Rule], state: AlertState, snapshot: Snapshot, now_ms: int
) -> tuple[AlertState, list[Alert]]:
    """The campaign's state after `snapshot` and the messages the change causes, rules in their order,
    then campaign.completed, then campaign.stalled. A rule not in `rules` any more is forgotten."""
    alerts: list[Alert] = []
    triggered: dict[str, int] = {}
    for rule in rules:
        if not applies(rule, snapshot.campaign_id):
            continue
        true, value = holds(rule, snapshot, now_ms)
        was = state.rules.get(rule.rule_id)
        if true:
            triggered[rule.rule_id] = was if was is not None else now_ms
            if was is None:
                alerts.append(Alert("alert.triggered", snapshot.campaign_id, rule, value))
        elif was is not None:
            alerts.append(Alert("alert.resolved", snapshot.campaign_id, rule, value))
    status = campaign_status(_progress(snapshot), now_ms, snapshot.stall_after_minutes)
    completed = _since(status == "completed", state.completed, now_ms)
    if completed is not None and state.completed is None:
        alerts.append(Alert("campaign.completed", snapshot.campaign_id))
    stalled = _since(status == "stalled", state.stalled, now_ms)
    if stalled is not None and state.stalled is None:
        alerts.append(Alert("campaign.stalled", snapshot.campaign_id))
    return AlertState(triggered, completed, stalled), alerts


def _since(true: bool, since: int | None, now_ms: int) -> int | None:
    """Since when a condition holds: kept while true, now when it became true, None when false."""
    if not true:
        return None
    return since if since is not None else now_ms


def _progress(snapshot: Snapshot) -> Progress:
    return Progress(
        snapshot.total,
        snapshot.pending,
        snapshot.in_progress,
        snapshot.first_call_at,
        snapshot.last_final_at,
        snapshot.last_event_at,
    )
