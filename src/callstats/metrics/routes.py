"""GET /metrics: the Prometheus text exposition (not JSON, so not in /openapi.json, like /docs)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response

from callstats.metrics.access import check_access
from callstats.metrics.exposition import CONTENT_TYPE, exposition
from callstats.metrics.instruments import Metrics

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Every `callstats_*` metric, every worker's summed, in the Prometheus text format (text/plain).

    Needs `Authorization: Bearer <CALLSTATS_METRICS_TOKEN>` when that is set, else a loopback client
    (metrics/access.py): 401 `UNAUTHORIZED` or 403 `FORBIDDEN` in the envelope otherwise.
    """
    state = request.app.state
    client = request.client.host if request.client is not None else None
    check_access(state.settings.metrics_token, request.headers, client)
    return Response(exposition(state.metrics), media_type=CONTENT_TYPE)


def install_metrics(api: FastAPI, metrics: Metrics) -> None:
    """Give the app its instruments (`api.state.metrics`) and the /metrics route."""
    api.state.metrics = metrics
    api.include_router(router)
