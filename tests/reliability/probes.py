"""One request to each route, timed: what every route answers while a backend is down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

Probe = Callable[[httpx.Client], httpx.Response]


@dataclass(frozen=True)
class Answer:
    """A route's answer: status, Retry-After header, seconds it took."""

    route: str
    status: int
    retry_after: str | None
    seconds: float


def route_probes(key: str, campaign_id: str) -> dict[str, Probe]:
    """A request for every route that touches the database (the stream's first read included)."""
    auth = {"x-api-key": key}

    def event(http: httpx.Client) -> httpx.Response:
        body = {
            "event_id": f"probe-{uuid.uuid4().hex}",
            "campaign_id": campaign_id,
            "phone": "+14155558888",  # no contact: the event is refused (200), nothing changes
            "call_id": f"probe-{uuid.uuid4().hex}",
            "type": "call.started",
            "occurred_at": "2024-01-16T10:00:00Z",
        }
        return http.post("/recordCallEvents", json={"events": [body]}, headers=auth)

    def stream(http: httpx.Client) -> httpx.Response:
        with http.stream("GET", f"/streamCampaignStats/{campaign_id}", headers=auth) as response:
            return response  # the status line is enough: a 200 stream is closed here

    return {
        "/ready": lambda http: http.get("/ready"),
        "getCampaignStats": lambda http: http.get(f"/getCampaignStats/{campaign_id}", headers=auth),
        "recordCallEvents": event,
        "createCampaign": lambda http: http.post("/createCampaign", json={"name": "probe"}, headers=auth),
        "addContacts": lambda http: http.post(
            f"/addContacts/{campaign_id}", json={"contacts": [{"phone": "+14155559999"}]}, headers=auth
        ),
        "getCampaign": lambda http: http.get(f"/getCampaign/{campaign_id}", headers=auth),
        "getCampaigns": lambda http: http.get("/getCampaigns", headers=auth),
        "getCampaignTimeseries": lambda http: http.get(f"/getCampaignTimeseries/{campaign_id}", headers=auth),
        "streamCampaignStats": stream,
    }


def probe_all(base_url: str, probes: dict[str, Probe], copies: int = 2) -> list[Answer]:
    """Every probe `copies` times, all at once; each answer timed (a hung request fails after 60 s)."""

    def one(route: str) -> Answer:
        started = time.monotonic()
        with httpx.Client(base_url=base_url, timeout=60) as http:
            response = probes[route](http)
        return Answer(
            route, response.status_code, response.headers.get("retry-after"), time.monotonic() - started
        )

    routes = [route for route in probes for _ in range(copies)]
    with ThreadPoolExecutor(len(routes)) as pool:
        return list(pool.map(one, routes))


def worst_by_route(answers: list[Answer]) -> dict[str, str]:
    """Per route: its statuses and its slowest answer, for the test's figures."""
    table: dict[str, str] = {}
    for route in dict.fromkeys(a.route for a in answers):
        mine = [a for a in answers if a.route == route]
        statuses = "/".join(sorted({str(a.status) for a in mine}))
        table[route] = f"{statuses} in {max(a.seconds for a in mine):.2f} s"
    return table
