"""The stats use cases: read a campaign's counters for a key, and getCampaignStats' one body and ETag.

Role: the service of stats/. `stats_body` and `etag_of` are the only builders of getCampaignStats'
body and ETag (the route answers them, the live stream sends the same bytes). StatsService is the
hot read: the key and the counters in one query (stats/readers.py), the key check, tenancy, the
rate limit, and a body rebuilt only when the counters changed.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import orjson
from anyio.to_thread import run_sync

from callstats.accounts.service import checked_key
from callstats.core.counters import Counters
from callstats.db import counters as counters_store
from callstats.db.counters import KeyAndCounters
from callstats.db.engine import Database
from callstats.errors import CampaignNotFound, RateLimited
from callstats.ratelimit import Decision, StatsRateLimiter
from callstats.stats.readers import stats_reader
from callstats.stats.response import attempts_section, durations_section, stats_response
from callstats.stats.schemas import AttemptsSection, DurationsSection

Headers = list[tuple[str, str]]
RENDERED_KEPT = 10_000  # campaigns whose last body is kept, at most (a bounded memory)


def stats_body(
    counters: Counters,
    attempts: AttemptsSection | None = None,
    durations: DurationsSection | None = None,
    raw_outcomes: dict[str, int] | None = None,
) -> bytes:
    """getCampaignStats' 200 body: the envelope around the seed's response, and the sections asked for
    (in this order: attempts, durations, raw_outcomes)."""
    data = stats_response(counters)
    if attempts is not None:
        data["attempts"] = attempts
    if durations is not None:
        data["durations"] = durations
    if raw_outcomes is not None:
        data["raw_outcomes"] = raw_outcomes
    return orjson.dumps({"success": True, "data": data})


def etag_of(body: bytes) -> str:
    """The ETag of a body: 24 hex digits of its BLAKE2b digest, in double quotes."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def campaign_counters(db: Database, account_id: str, campaign_id: str) -> Counters | None:
    """A campaign's counters now (blocking), or None when the account has no such campaign."""
    with db.read() as conn:
        return counters_store.read(conn, account_id, campaign_id)


class Extras(NamedTuple):
    """What the `?include=` sections are built from: the histograms ({"a": ..., "t": ...}, empty when
    neither attempts nor durations is asked for) and the raw outcome counts (None when not asked for)."""

    histograms: dict[str, dict[int, int]]
    raw_outcomes: dict[str, int] | None


def _extras(db: Database, campaign_id: str, include: frozenset[str]) -> Extras:
    """Read (blocking, on one connection) what the sections in `include` need, and nothing else."""
    with db.read() as conn:
        histograms = (
            counters_store.histograms(conn, campaign_id)
            if include & {"attempts", "durations"}
            else {"a": {}, "t": {}}
        )
        raw = counters_store.raw_outcomes(conn, campaign_id) if "raw_outcomes" in include else None
    return Extras(histograms, raw)


class Rendered(NamedTuple):
    """A body of getCampaignStats and its ETag, and the row it was built from."""

    row: KeyAndCounters
    body: bytes
    etag: str


class StatsService:
    """getCampaignStats for a presented key: checked, counted against the quota, rendered."""

    def __init__(self, db: Database, limiter: StatsRateLimiter) -> None:
        self.db = db
        self.limiter = limiter
        self.reader = stats_reader(db)
        self._rendered: dict[tuple[str, str], Rendered] = {}  # (key id, campaign id) -> the last body

    async def answer(
        self, plaintext: str, key_id: str, campaign_id: str, include: frozenset[str]
    ) -> tuple[Headers, Rendered]:
        """The quota's headers, and the campaign's body and ETag (a plain pair: no allocation per read).

        Raises Unauthorized (401) for an unknown, wrong or revoked key, CampaignNotFound (404) when
        the key's account has no such campaign, RateLimited (429) over the campaign's quota.
        """
        row = await self.reader.read(key_id, campaign_id)
        checked_key(plaintext, key_id, row.key if row is not None else None)
        assert row is not None  # checked_key refuses a missing key
        if row.campaign_name is None:
            raise CampaignNotFound()
        quota_headers = self._quota_headers(await self.limiter.hit(campaign_id))
        if include:
            body = await self._body_with(campaign_id, row, include)
            return quota_headers, Rendered(row, body, etag_of(body))
        return quota_headers, self._render(key_id, campaign_id, row)

    def _quota_headers(self, decision: Decision | None) -> Headers:
        """The RateLimit headers of a read let through; RateLimited (429) over the quota."""
        if decision is None:  # limiter unreachable: served without a count (see docs/deployment.md)
            return [self.limiter.policy_header()]
        if not decision.allowed:
            message = f"Rate limit exceeded for this campaign; retry in {decision.reset_seconds} s"
            raise RateLimited(message, headers=dict(decision.headers()))
        return decision.headers()

    def _render(self, key_id: str, campaign_id: str, row: KeyAndCounters) -> Rendered:
        """The body of the seed's response, rebuilt only when the row read changed."""
        cached = self._rendered.get((key_id, campaign_id))
        if cached is not None and (cached.row is row or cached.row == row):
            return cached
        body = stats_body(row.counters(campaign_id))
        if len(self._rendered) > RENDERED_KEPT:
            self._rendered.clear()
        rendered = self._rendered[key_id, campaign_id] = Rendered(row, body, etag_of(body))
        return rendered

    async def _body_with(self, campaign_id: str, row: KeyAndCounters, include: frozenset[str]) -> bytes:
        """The seed's response plus the sections `include` asks for (read from the histograms and the
        raw outcome counts)."""
        extras = (
            _extras(self.db, campaign_id, include)
            if self.db.is_sqlite  # microseconds: cheaper inline than a thread hop
            else await run_sync(_extras, self.db, campaign_id, include)
        )
        attempts = attempts_section(row._asdict(), extras.histograms["a"]) if "attempts" in include else None
        durations = durations_section(extras.histograms["t"]) if "durations" in include else None
        return stats_body(row.counters(campaign_id), attempts, durations, extras.raw_outcomes)

    async def aclose(self) -> None:
        """Release the reader's connections and the limiter's."""
        await self.reader.aclose()
        await self.limiter.aclose()
