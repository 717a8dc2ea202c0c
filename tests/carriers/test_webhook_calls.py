"""Acceptance: whole calls of every outcome through each platform's signed webhooks give the numbers an
independent model expects (tests/carriers/webhook_kit.py, from docs/semantics.md and the issue's
mapping tables), whatever the order the callbacks come in and however often they are redelivered;
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from callstats.config import Settings
from tests.carriers.webhook_kit import (
    KINDS,
    T0,
    Callback,
    CampaignModel,
    Hooked,
    PlannedCall,
    Rules,
    assert_acknowledged,
    deliver,
    every_order,
    hooked,
    interleaved,
    numbers,
    phone,
    planned_call,
    stored_verdicts,
    with_redeliveries,
)

PROVIDERS = ("twilio", "retell", "vapi")
LIVE_CONTACTS = 2


def orders_per_kind(provider: str) -> dict[str, int]:
    """How many contacts each kind of call gets: one per order of its callbacks, at least four (so
    every raw status or reason of the kind is sent)."""
    sizes = {}
    for kind in KINDS:
        call = planned_call(provider, "probe", phone(0), kind, 0, T0, "probe")
        sizes[kind] = max(len(every_order(call)), 4)
    return sizes


def single_calls(hook: Hooked) -> tuple[list[PlannedCall], list[tuple[Callback, ...]]]:
    """One call per contact: for each kind, each order of its callbacks (contact k dials phone(k)),
    then LIVE_CONTACTS calls still live; each call with the order its callbacks are sent in."""
    calls: list[PlannedCall] = []
    orders: list[tuple[Callback, ...]] = []
    for kind, size in orders_per_kind(hook.provider).items():
        for variant in range(size):
            number = len(calls)
            call = planned_call(
                hook.provider,
                f"{kind}-{variant:03d}",
                phone(number),
                kind,
                variant,
                T0 + number * 60_000,
                hook.campaign_id,
            )
            permutations = every_order(call)
            calls.append(call)
            orders.append(permutations[variant % len(permutations)])
    for variant in range(LIVE_CONTACTS):
        number = len(calls)
        call = planned_call(
            hook.provider, f"live-{variant}", phone(number), "live", variant, T0, hook.campaign_id
        )
        calls.append(call)
        orders.append(call.callbacks[::-1])
    return calls, orders


def contact_count(provider: str) -> int:
    return sum(orders_per_kind(provider).values()) + LIVE_CONTACTS


async def send_all(hook: Hooked, deliveries: Sequence[Callback]) -> None:
    """Deliver one after the other; each must be acknowledged (2xx)."""
    for callback in deliveries:
        assert_acknowledged(hook, await deliver(hook, callback))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_outcome_in_every_order_and_redelivered_gives_the_models_numbers(
    settings: Settings, provider: str
) -> None:
    """Each kind of call (answered, busy, no answer, voicemail by machine detection, failed, canceled,
    still live) once per order of its callbacks, contacts interleaved at random and about 40 % of the
    callbacks redelivered: the model's numbers and verdicts. Everything delivered again, in another
    order: the very same numbers, every event-bearing callback a duplicate."""
    phones = [phone(n) for n in range(contact_count(provider))]
    async with hooked(settings, provider, phones) as hook:
        calls, orders = single_calls(hook)
        model = CampaignModel(Rules(), [[call] for call in calls])
        rng = random.Random(f"every order {provider}")
        first = interleaved(rng, [with_redeliveries(rng, order) for order in orders])
        await send_all(hook, first)
        expected = model.numbers()
        assert expected["calls_completed"] and expected["calls_pending"] and expected["calls_in_progress"]
        assert await numbers(hook) == expected
        assert stored_verdicts(hook.app) == model.verdicts(first)

        again = [callback for order in orders for callback in order]
        rng.shuffle(again)
        await send_all(hook, again)
        assert await numbers(hook) == expected
        verdicts = model.verdicts([*first, *again])
        assert stored_verdicts(hook.app) == verdicts
        assert verdicts["duplicate"] >= sum(1 for callback in again if callback.moves)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_callbacks_arriving_all_at_once_give_the_same_numbers(
    settings: Settings, provider: str
) -> None:
    """Every callback of every call, redeliveries included, sent concurrently (they share the write
    path's group commits and race for the same calls): the model's numbers and verdicts still."""
    phones = [phone(n) for n in range(contact_count(provider))]
    async with hooked(settings, provider, phones) as hook:
        calls, orders = single_calls(hook)
        model = CampaignModel(Rules(), [[call] for call in calls])
        rng = random.Random(f"at once {provider}")
        deliveries = interleaved(rng, [with_redeliveries(rng, order) for order in orders])
        for response in await asyncio.gather(*(deliver(hook, callback) for callback in deliveries)):
            assert_acknowledged(hook, response)
        assert await numbers(hook) == model.numbers()
        assert stored_verdicts(hook.app) == model.verdicts(deliveries)


SCRIPTS: tuple[tuple[str, ...], ...] = (
    ("busy", "answered"),
    ("no_answer", "voicemail", "failed"),
    ("voicemail", "busy", "no_answer", "answered"),  # a fourth call past max_attempts 3
    ("answered", "busy"),  # a call to a completed contact
    ("failed", "live"),
    ("canceled",),
    ("busy",),
    (),
    ("voicemail", "voicemail"),
    ("no_answer", "answered"),
    ("canceled", "canceled", "canceled"),
)
"""The calls each contact gets, one after the other."""
RULES = (
    Rules(),
    Rules(max_attempts=2, retry_on=frozenset({"no_answer"})),
    Rules(max_attempts=1, retry_on=frozenset()),
    Rules(max_attempts=4, retry_on=frozenset({"busy", "voicemail", "failed"})),
)


def scripted_calls(hook: Hooked, rng: random.Random) -> tuple[list[list[PlannedCall]], list[list[Callback]]]:
    """Each contact's calls per SCRIPTS, and its callbacks: each call's in a random order, a call's
    ending callback before any of the next call's; what a call's order puts after its ending callback
    straggles in anywhere later, among the next calls' callbacks."""
    contacts: list[list[PlannedCall]] = []
    sequences: list[list[Callback]] = []
    for number, script in enumerate(SCRIPTS):
        calls = [
            planned_call(
                hook.provider,
                f"c{number}-a{attempt}",
                phone(number),
                kind,
                number + attempt,
                T0 + (number * 10 + attempt) * 60_000,
                hook.campaign_id,
            )
            for attempt, kind in enumerate(script)
        ]
        contacts.append(calls)
        sequences.append(with_stragglers(rng, calls))
    return contacts, sequences


def with_stragglers(rng: random.Random, calls: Sequence[PlannedCall]) -> list[Callback]:
    """One contact's callbacks, call after call, each call's shuffled; those a call's order puts after
    its ending callback are moved to random places after that callback."""
    sequence: list[Callback] = []
    stragglers: list[tuple[int, Callback]] = []  # (earliest place, callback)
    for call in calls:
        shuffled = list(call.callbacks)
        rng.shuffle(shuffled)
        ending = next((n for n, c in enumerate(shuffled) if c.name in ENDING), len(shuffled) - 1)
        sequence.extend(shuffled[: ending + 1])
        stragglers.extend((len(sequence), callback) for callback in shuffled[ending + 1 :])
    for earliest, callback in sorted(stragglers, key=lambda pair: -pair[0]):  # later ones first
        sequence.insert(rng.randint(earliest, len(sequence)), callback)
    return sequence


ENDING = frozenset({"completed", "busy", "no-answer", "failed", "canceled", "call_ended", "report"})
"""The names of the callbacks that end a call (Twilio's final statuses, Retell's call_ended, Vapi's
end-of-call-report)."""


@pytest.mark.parametrize("rules", RULES, ids=lambda r: f"max{r.max_attempts}-{'-'.join(sorted(r.retry_on))}")
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_retries_follow_the_campaigns_rules(settings: Settings, provider: str, rules: Rules) -> None:
    """Contacts called several times under the campaign's max_attempts and retry_on: the model's
    numbers; a call the rules do not allow (its contact final, or out of attempts) is unmatched for a
    conflicting state and changes nothing, however often it is redelivered."""
    async with hooked(settings, provider, [phone(n) for n in range(len(SCRIPTS))], rules) as hook:
        rng = random.Random(f"retries {provider} {rules}")
        contacts, sequences = scripted_calls(hook, rng)
        model = CampaignModel(rules, contacts)
        deliveries = interleaved(rng, [with_redeliveries(rng, sequence) for sequence in sequences])
        await send_all(hook, deliveries)
        assert await numbers(hook) == model.numbers()
        verdicts = model.verdicts(deliveries)
        assert stored_verdicts(hook.app) == verdicts
        assert verdicts["unmatched"] > 0
        listed = await hook.http.get("/getUnmatchedCallbacks", params={"limit": 200}, headers=hook.auth)
        reasons = [callback["reason"] for callback in listed.json()["data"]]
        assert len(reasons) == verdicts["unmatched"]
        assert all(reason.startswith("conflicting state: contact ") for reason in reasons), reasons
