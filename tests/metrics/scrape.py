"""Reading /metrics in the tests, with prometheus-client's own parser: samples by name and labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parsed(text: str) -> Samples:
    """Every sample of an exposition, keyed by its name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The series of `name` whose value changed, with the change."""
    changes = {
        labels: figure - before.get((sample, labels), 0.0)
        for (sample, labels), figure in after.items()
        if sample == name
    }
    return {labels: change for labels, change in changes.items() if change}


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    """A series' labels, as `moved` keys them."""
    return frozenset(pairs.items())


async def scrape(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> Samples:
    """GET /metrics (it must answer 200 in the text format), parsed."""
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return parsed(response.text)
