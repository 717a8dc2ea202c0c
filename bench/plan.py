"""What the quick and the full runs measure, and for how long."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one bench run."""

    name: str
    read_sizes: dict[str, int]  # label -> contacts, for the SQLite read data set
    scale_labels: list[str]  # (A): one-client latency must not grow across these
    flat_labels: list[str]  # B1: p50 under load within 20 % across these
    naive_labels: list[str]  # B2: per-request recomputation at these sizes
    pg_size: int  # B1: contacts of the PostgreSQL read campaign
    rounds: int
    seconds: float  # per wrk run in a round
    one_client_seconds: float
    naive_one_client_seconds: float
    batch_seconds: float  # B3: recordCallEvents, 1,000 per request
    single_seconds: float  # B3: one event per request
    pool: int  # contacts called again and again by the ingestion runs
    imports: int  # B4: contacts imported through addContacts


QUICK = Plan(
    name="quick",
    read_sizes={"1k": 1_000, "10k": 10_000, "100k": 100_000},
    scale_labels=["10k", "100k"],
    flat_labels=["1k", "10k", "100k"],
    naive_labels=["10k", "100k"],
    pg_size=10_000,
    rounds=2,
    seconds=2,
    one_client_seconds=1,
    naive_one_client_seconds=2,
    batch_seconds=5,
    single_seconds=4,
    pool=50_000,
    imports=100_000,
)

FULL = Plan(
    name="full",
    read_sizes={"1k": 1_000, "10k": 10_000, "50k": 50_000, "1M": 1_000_000, "10M": 10_000_000},
    scale_labels=["10k", "50k", "1M", "10M"],
    flat_labels=["1k", "1M", "10M"],
    naive_labels=["10k", "50k", "1M"],
    pg_size=1_000_000,
    rounds=3,
    seconds=10,
    one_client_seconds=3,
    naive_one_client_seconds=10,
    batch_seconds=60,
    single_seconds=30,
    pool=200_000,
    imports=1_000_000,
)
