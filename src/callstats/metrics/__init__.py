"""Monitoring: the Prometheus instruments and GET /metrics.

- `instruments.py`: `Metrics`, every `callstats_*` metric and the calls the request paths record them with.
- `exposition.py`: the text /metrics answers, one process's or every worker's summed (multiprocess mode).
- `access.py`: who may read it (CALLSTATS_METRICS_TOKEN, else loopback clients only).
- `routes.py`: the route.
"""
