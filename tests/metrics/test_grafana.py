"""deploy/grafana-dashboard.json: it loads, each panel queries only metrics /metrics exposes, and
every callstats_ metric /metrics exposes has a panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
METRIC_NAME = re.compile(r"\bcallstats_[a-z_]+\b")
SUBJECTS = (
    "Request rate",
    "Latency",
    "Error rate",
    "Events",
    "Rate-limited",
    "streams",
    "feed lag",
    "pool",
    "callbacks",
)


def expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables' queries."""
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["definition"]


def balanced(expression: str) -> bool:
    """Brackets of every kind closed in order (outside quoted label values)."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    stack: list[str] = []
    for char in unquoted:
        if char in "([{":
            stack.append({"(": ")", "[": "]", "{": "}"}[char])
        elif char in ")]}" and (not stack or stack.pop() != char):
            return False
    return not stack


async def test_the_dashboard_queries_what_metrics_exposes(client: httpx.AsyncClient) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "callstats"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    assert [subject for subject in SUBJECTS if subject.lower() not in titles] == []

    assert (await client.get("/health")).status_code == 200  # a request series exists
    response = await client.get("/metrics")
    assert response.status_code == 200
    families = list(text_string_to_metric_families(response.text))
    exposed = {sample.name for family in families for sample in family.samples}
    queried = {name for expression in expressions(dashboard) for name in METRIC_NAME.findall(expression)}
    assert queried and queried <= exposed, sorted(queried - exposed)
    for expression in expressions(dashboard):
        assert balanced(expression), expression

    # every metric has a panel: a family is shown through one of its samples (a counter's _total,
    # a histogram's _bucket)
    shown = {family.name for family in families if {s.name for s in family.samples} & queried}
    assert {family.name for family in families if family.name.startswith("callstats_")} == shown
