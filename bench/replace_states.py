"""`python -m bench.replace_states`: what a new lifecycle state costs, by the way it is built.

Issue 10, item 7. The lifecycle builds a new CallState (10 fields) or ContactState (6 fields) for
every applied event, changing a few fields of the old one. This times, per state built (us, min and
median of several timeit repeats): a frozen dataclass built field by field, `dataclasses.replace`,
a NamedTuple built field by field and `NamedTuple._replace`; then the reads of the fields the
storage layer writes back, and `lifecycle.apply` (alone, then with `counters.moved`) over a
realistic event stream. `--against FILE` also times another version of the lifecycle module, round
for round with callstats' own (a shared machine's load then weighs on both alike), e.g.
`git show 86ee8dd:src/callstats/core/lifecycle.py > /tmp/old_lifecycle.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import random
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from callstats.core import counters, lifecycle

T0 = 1_700_000_000_000


@dataclass(frozen=True)
class DataCall:
    """The call state as a frozen dataclass (the lifecycle's shape before issue 10)."""

    call_id: str
    contact_id: int
    attempt: int
    started_at: int
    status: str = "live"
    answered_at: int | None = None
    ended_at: int | None = None
    outcome: str | None = None
    duration_seconds: int | None = None
    start_reported: bool = False


class TupleCall(NamedTuple):
    """The same call state as a NamedTuple."""

    call_id: str
    contact_id: int
    attempt: int
    started_at: int
    status: str = "live"
    answered_at: int | None = None
    ended_at: int | None = None
    outcome: str | None = None
    duration_seconds: int | None = None
    start_reported: bool = False


def data_answered(call: DataCall, at: int) -> DataCall:
    """One field changed, built field by field (today's `_answered`)."""
    return DataCall(
        call_id=call.call_id,
        contact_id=call.contact_id,
        attempt=call.attempt,
        started_at=call.started_at,
        status=call.status,
        answered_at=at,
        ended_at=call.ended_at,
        outcome=call.outcome,
        duration_seconds=call.duration_seconds,
        start_reported=call.start_reported,
    )


def data_restarted(call: DataCall, at: int) -> DataCall:
    """Two fields changed, built field by field (today's `_restarted`)."""
    return DataCall(
        call_id=call.call_id,
        contact_id=call.contact_id,
        attempt=call.attempt,
        started_at=at,
        status=call.status,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        outcome=call.outcome,
        duration_seconds=call.duration_seconds,
        start_reported=True,
    )


def tuple_answered(call: TupleCall, at: int) -> TupleCall:
    """One field changed, a NamedTuple built field by field."""
    return TupleCall(
        call_id=call.call_id,
        contact_id=call.contact_id,
        attempt=call.attempt,
        started_at=call.started_at,
        status=call.status,
        answered_at=at,
        ended_at=call.ended_at,
        outcome=call.outcome,
        duration_seconds=call.duration_seconds,
        start_reported=call.start_reported,
    )


def tuple_restarted(call: TupleCall, at: int) -> TupleCall:
    """Two fields changed, a NamedTuple built field by field."""
    return TupleCall(
        call_id=call.call_id,
        contact_id=call.contact_id,
        attempt=call.attempt,
        started_at=at,
        status=call.status,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        outcome=call.outcome,
        duration_seconds=call.duration_seconds,
        start_reported=True,
    )


def read_back(call: DataCall | TupleCall) -> tuple[Any, ...]:
    """The seven fields `calls.queries` writes back for a changed call."""
    return (
        call.started_at,
        call.start_reported,
        call.status,
        call.answered_at,
        call.ended_at,
        call.outcome,
        call.duration_seconds,
    )


def micro_cases() -> list[tuple[str, Callable[[], object]]]:
    """(name, one build) for each way of building the call state, and the reads."""
    d = DataCall("c1", 1, 1, T0)
    t = TupleCall("c1", 1, 1, T0)
    return [
        ("1 field: dataclass, field by field", lambda: data_answered(d, T0 + 1)),
        ("1 field: dataclasses.replace", lambda: dataclasses.replace(d, answered_at=T0 + 1)),
        ("1 field: NamedTuple, field by field", lambda: tuple_answered(t, T0 + 1)),
        ("1 field: NamedTuple._replace", lambda: t._replace(answered_at=T0 + 1)),
        ("2 fields: dataclass, field by field", lambda: data_restarted(d, T0 - 1)),
        (
            "2 fields: dataclasses.replace",
            lambda: dataclasses.replace(d, started_at=T0 - 1, start_reported=True),
        ),
        ("2 fields: NamedTuple, field by field", lambda: tuple_restarted(t, T0 - 1)),
        ("2 fields: NamedTuple._replace", lambda: t._replace(started_at=T0 - 1, start_reported=True)),
        ("read 7 fields: dataclass", lambda: read_back(d)),
        ("read 7 fields: NamedTuple", lambda: read_back(t)),
    ]


def timed(run: Callable[[], object], number: int, repeat: int) -> tuple[float, float]:
    """(min, median) microseconds per call of `run` over `repeat` rounds of `number` calls."""
    rounds = timeit.Timer(run).repeat(repeat=repeat, number=number)
    per_call = [seconds / number * 1e6 for seconds in rounds]
    return min(per_call), statistics.median(per_call)


def contact_events(rng: random.Random, contact: int, rules: Any, events: Any) -> list[Any]:
    """One contact's calls until it is final: started, sometimes answered, ended; a few late starts."""
    out: list[Any] = []
    at = T0 + contact * 1_000
    for attempt in range(1, rules.max_attempts + 1):
        call_id = f"k{contact}-{attempt}"
        outcome = rng.choice(["answered", "busy", "no_answer", "voicemail", "failed"])
        out.append(events("call.started", call_id, at))
        if outcome == "answered":
            out.append(events("call.answered", call_id, at + 5_000))
        duration = rng.randint(1, 600) if outcome == "answered" else 0
        out.append(events("call.ended", call_id, at + 60_000, outcome, duration))
        if rng.random() < 0.05:  # a redelivered start, earlier than the first: the start moves
            out.append(events("call.started", call_id, at - 10))
        if outcome == "answered" or outcome not in rules.retry_on:
            break
        at += 3_600_000
    return out


def stream(module: ModuleType, contacts: int) -> list[tuple[int, Any]]:
    """(contact id, event) of `contacts` contacts, their calls' events interleaved in a fixed order."""
    rng = random.Random(10)
    rules = module.RetryRules()
    per_contact = [contact_events(rng, c, rules, module.CallEvent) for c in range(1, contacts + 1)]
    tagged = [(c, i, e) for c, events in enumerate(per_contact, 1) for i, e in enumerate(events)]
    tagged.sort(key=lambda t: (t[1], rng.random()))  # every contact's n-th event before its (n+1)-th
    return [(c, e) for c, _, e in tagged]


def replay(module: ModuleType, events: list[tuple[int, Any]], with_moved: bool) -> Callable[[], object]:
    """One pass of the stream through `module.apply` (and `counters.moved`), states kept as storage does."""
    rules = module.RetryRules()
    ids = sorted({contact_id for contact_id, _ in events})

    def run() -> object:
        contacts = {c: module.ContactState(c) for c in ids}
        calls: dict[str, Any] = {}
        delta = counters.CounterDelta()
        for contact_id, event in events:
            contact, call = contacts[contact_id], calls.get(event.call_id)
            transition = module.apply(contact, call, event, rules)
            if transition.effect == "applied":
                contacts[contact_id] = transition.contact
                calls[event.call_id] = transition.call
                if with_moved:
                    counters.moved(counters.EventApplied(contact, call, transition, 0), delta)
        return delta

    return run


def load(path: str) -> ModuleType:
    """The lifecycle module in the file `path`."""
    spec = importlib.util.spec_from_file_location("other_lifecycle", Path(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def line(name: str, figures: tuple[float, float], unit: str = "us") -> str:
    """One row of the table."""
    return f"| {name} | {figures[0]:.3f} {unit} | {figures[1]:.3f} {unit} |"


def replays(modules: dict[str, ModuleType], contacts: int, repeat: int) -> None:
    """Print the per-event figures of each module's replay, the modules' rounds interleaved."""
    for label, with_moved in (("apply", False), ("apply + counters.moved", True)):
        streams = {name: stream(m, contacts) for name, m in modules.items()}
        runs = {name: replay(m, streams[name], with_moved) for name, m in modules.items()}
        rounds: dict[str, list[float]] = {name: [] for name in modules}
        for _ in range(repeat):
            for name, run in runs.items():
                rounds[name] += [timeit.Timer(run).timeit(number=1)]
        events = len(streams["callstats"])
        for name, seconds in rounds.items():
            per_event = [s / events * 1e6 for s in seconds]
            figures = (min(per_event), statistics.median(per_event))
            print(line(f"{label}, {name}, per event ({events:,} events)", figures), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Print the table: the micro cases, then the lifecycle's replay per event."""
    parser = argparse.ArgumentParser(prog="python -m bench.replace_states", description=__doc__)
    parser.add_argument("--repeat", type=int, default=9, help="timeit rounds per figure")
    parser.add_argument("--number", type=int, default=200_000, help="builds per round (micro cases)")
    parser.add_argument("--contacts", type=int, default=20_000, help="contacts in the replayed stream")
    parser.add_argument("--against", help="a lifecycle module file to time as well as callstats' own")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}; {args.repeat} rounds each\n")
    print("| case | min | median |\n| --- | --- | --- |")
    for name, run in micro_cases():
        print(line(name, timed(run, args.number, args.repeat)), flush=True)
    modules = {"callstats": lifecycle} | ({args.against: load(args.against)} if args.against else {})
    replays(modules, args.contacts, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
