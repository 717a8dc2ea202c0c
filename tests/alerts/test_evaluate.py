"""The edge-triggered core (core/alerts.py) on its own, and random event streams end to end: the alerts
a real receiver gets equal an independent model's threshold crossings, in order, none repeated."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from callstats.app import CallstatsApp
from callstats.core.alerts import AlertState, Rule, Snapshot, evaluate
from callstats.db.schema import webhook_outbox
from tests.alerts.receiver import Receiver, eventually
from tests.conftest import new_campaign
from tests.factories import ended_call, record

MINUTE = 60_000
CAMPAIGN = "c1"


def _run(rules: list[Rule], snapshots: list[Snapshot], at: int = 0) -> list[tuple[str, str | None]]:
    state = AlertState()
    seen: list[tuple[str, str | None]] = []
    for n, snapshot in enumerate(snapshots):
        state, alerts = evaluate(rules, state, snapshot, at + n)
        seen += [(a.type, a.rule.rule_id if a.rule else None) for a in alerts]
    return seen


def test_a_rule_triggers_once_while_true_and_resolves_once() -> None:
    rule = Rule("r", "many failures", "calls_failed", ">=", 2)
    counts = [0, 1, 2, 3, 4, 1, 0, 2]
    snapshots = [Snapshot(CAMPAIGN, total=10, pending=10 - f, failed=f, first_call_at=0) for f in counts]
    assert _run([rule], snapshots) == [
        ("alert.triggered", "r"),
        ("alert.resolved", "r"),
        ("alert.triggered", "r"),
    ]


def test_min_final_contacts_keeps_a_rate_rule_quiet() -> None:
    rule = Rule("r", "low success", "success_rate", "<", 20, min_final_contacts=3)
    quiet = Snapshot(CAMPAIGN, total=10, pending=8, failed=2, first_call_at=0)  # 0 % of 2 final
    loud = Snapshot(CAMPAIGN, total=10, pending=7, failed=3, first_call_at=0)
    assert _run([rule], [quiet]) == []
    assert _run([rule], [quiet, loud]) == [("alert.triggered", "r")]


def test_a_rule_of_another_campaign_is_not_evaluated() -> None:
    rule = Rule("r", "x", "calls_completed", ">", 0, campaign_id="other")
    assert _run([rule], [Snapshot(CAMPAIGN, total=1, completed=1, first_call_at=0)]) == []


def test_completion_and_stall_are_edges_too() -> None:
    running = Snapshot(CAMPAIGN, total=2, pending=1, completed=1, first_call_at=0, last_event_at=0)
    done = Snapshot(CAMPAIGN, total=2, completed=2, first_call_at=0, last_final_at=1, last_event_at=1)
    more = Snapshot(CAMPAIGN, total=3, pending=1, completed=2, first_call_at=0, last_event_at=34 * MINUTE)
    state = AlertState()
    types: list[str] = []
    for snapshot, now in [(running, 1), (running, 31 * MINUTE), (running, 32 * MINUTE), (done, 33 * MINUTE)]:
        state, alerts = evaluate([], state, snapshot, now)
        types += [a.type for a in alerts]
    assert types == ["campaign.stalled", "campaign.completed"]
    state, alerts = evaluate([], state, more, 34 * MINUTE)  # contacts added: not completed any more
    assert alerts == [] and state.completed is None
    state, alerts = evaluate([], state, done, 35 * MINUTE)
    assert [a.type for a in alerts] == ["campaign.completed"]


def test_minutes_since_last_event_is_measured_by_the_clock() -> None:
    rule = Rule("quiet", "quiet", "minutes_since_last_event", ">=", 10)
    snapshot = Snapshot(CAMPAIGN, total=5, pending=5, first_call_at=0, last_event_at=0)
    state, alerts = evaluate([rule], AlertState(), snapshot, 9 * MINUTE)
    assert alerts == []
    state, alerts = evaluate([rule], state, snapshot, 10 * MINUTE)
    assert [(a.type, a.value) for a in alerts] == [("alert.triggered", 10.0)]


def test_a_deleted_rule_is_forgotten() -> None:
    rule = Rule("r", "x", "calls_failed", ">", 0)
    snapshot = Snapshot(CAMPAIGN, total=3, pending=2, failed=1, first_call_at=0)
    state, _ = evaluate([rule], AlertState(), snapshot, 0)
    assert set(state.rules) == {"r"}
    state, alerts = evaluate([], state, snapshot, 1)
    assert alerts == [] and state.rules == {}


# -- random streams end to end -----------------------------------------------------------------------

OUTCOMES = ("answered", "busy", "no_answer", "failed", "voicemail")
METRICS = ("success_rate", "calls_failed", "calls_completed", "completion_percent", "voicemail_percent")
OPS = {"<": Fraction.__lt__, "<=": Fraction.__le__, ">": Fraction.__gt__, ">=": Fraction.__ge__}


def _shown(part: int, whole: int) -> Fraction | None:
    """A percentage as the API shows it: half-up to two decimals; None when there is no whole."""
    if whole == 0:
        return None
    return Fraction((Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _model_value(metric: str, ended: list[str], total: int) -> Fraction | None:
    answered = ended.count("answered")
    if metric == "success_rate":
        return _shown(answered, len(ended))
    if metric == "calls_failed":
        return Fraction(len(ended) - answered)
    if metric == "calls_completed":
        return Fraction(answered)
    if metric == "completion_percent":
        return _shown(len(ended), total)
    return _shown(ended.count("voicemail"), len(ended))


def model(
    batches: list[list[str]], total: int, metric: str, op: str, value: int, minimum: int | None
) -> list[str]:
    """The messages a campaign of `total` contacts (one attempt each) must send as `batches` of calls
    end: each crossing of `metric op value` (quiet below `minimum` final contacts), then its completion."""
    ended: list[str] = []
    triggered, completed, sent = False, False, []
    for batch in batches:
        ended += batch
        current = _model_value(metric, ended, total)
        quiet = current is None or (minimum is not None and len(ended) < minimum)
        true = not quiet and current is not None and OPS[op](current, Fraction(value))
        if true != triggered:
            sent.append("alert.triggered" if true else "alert.resolved")
            triggered = true
        if len(ended) == total and not completed:
            sent.append("campaign.completed")
            completed = True
    return sent


streams = st.lists(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=4), min_size=1, max_size=5)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=streams,
    pending=st.integers(0, 1),
    metric=st.sampled_from(METRICS),
    op=st.sampled_from(sorted(OPS)),
    value=st.integers(0, 100),
    minimum=st.none() | st.integers(1, 6),
)
async def test_received_alerts_equal_the_models_crossings(
    started: CallstatsApp,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    receiver: Receiver,
    batches: list[list[str]],
    pending: int,
    metric: str,
    op: str,
    value: int,
    minimum: int | None,
) -> None:
    if metric in ("calls_failed", "calls_completed"):
        value = value % 8
    total = sum(len(b) for b in batches) + pending
    campaign_id = await new_campaign(started_client := client, auth, max_attempts=1)
    numbers = [f"+1415300{n:04d}" for n in range(total)]
    added = await client.post(
        f"/addContacts/{campaign_id}", json={"contacts": [{"phone": p} for p in numbers]}, headers=auth
    )
    assert added.json()["data"]["accepted"] == total
    endpoint = {
        "url": receiver.url,
        "campaign_id": campaign_id,
        "events": ["alert.triggered", "alert.resolved", "campaign.completed"],
    }
    assert (await client.post("/createWebhookEndpoint", json=endpoint, headers=auth)).status_code == 201
    rule = {"name": "r", "metric": metric, "op": op, "value": value, "campaign_id": campaign_id}
    if minimum is not None:
        rule["min_final_contacts"] = minimum
    assert (await client.post("/createAlertRule", json=rule, headers=auth)).status_code == 201
    # no time-based rule and no campaign.stalled taken: the timer evaluates nothing, every edge below
    # comes from a counter change (a rule true as created would else fire at the timer's next tick)
    phones = iter(numbers)
    for batch in batches:  # one request, one transaction, per batch
        events = []
        for outcome in batch:
            phone = next(phones)
            events.append(ended_call(campaign_id, phone, f"{campaign_id}-{phone}", outcome, 5))
        assert (await record(started_client, auth, *events))["applied"] == len(batch)
    expected = model(batches, total, metric, op, value, minimum)

    def mine() -> list[str]:
        return [
            r.json()["type"]
            for r in receiver.received
            if r.json()["data"]["campaign"]["campaign_id"] == campaign_id
        ]

    await eventually(lambda: len(mine()) >= len(expected), f"{len(expected)} messages")
    assert mine() == expected
    with started.db.read() as conn:
        queued = conn.execute(
            select(func.count())
            .select_from(webhook_outbox)
            .where(webhook_outbox.c.campaign_id == campaign_id)
        ).scalar_one()
    assert queued == len(expected)  # nothing more is on its way
