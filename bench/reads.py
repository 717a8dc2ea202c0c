"""Stats reads under wrk: every target measured once per round, rounds in alternating order."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

from bench import wrk
from bench.servers import Server
from bench.wrk import WrkResult


@dataclass(frozen=True)
class Target:
    """One URL to load: which server, which campaign, how hard."""

    key: str
    server: Server
    path: str
    headers: dict[str, str]
    connections: int = 32
    timeout_s: int = 10
    settle: bool = False  # wait for the server to go idle after the run (abandoned slow requests)
    seconds_factor: float = 1.0  # longer runs for targets that answer only every few seconds

    @property
    def url(self) -> str:
        """The full loopback URL."""
        return self.server.base_url + self.path


def measure(target: Target, seconds: float, connections: int | None = None) -> WrkResult:
    """One wrk run on `target` (with its own number of connections unless one is given)."""
    connections = connections or target.connections
    cpu_before = target.server.cpu_seconds()
    result = wrk.run(target.url, seconds, connections, headers=target.headers, timeout_s=target.timeout_s)
    if target.settle:
        target.server.wait_idle()
    result = replace(result, server_cpu_s=target.server.cpu_seconds() - cpu_before)
    print(
        f"  {target.key:<24} c{connections:<3} {result.rps:>9.1f} req/s  p50 {result.p50_ms:8.2f} ms"
        f"  p99 {result.p99_ms:8.2f} ms  cpu {result.cpu_us_per_request:8.0f} us/req  errors {result.errors}",
        file=sys.stderr,
        flush=True,
    )
    return result


def alternating_rounds(
    targets: list[Target], rounds: int, seconds: float, connections: int | None = None
) -> dict[str, list[WrkResult]]:
    """Each target once per round; odd rounds run the list backwards so drift hits every target alike."""
    results: dict[str, list[WrkResult]] = {t.key: [] for t in targets}
    for number in range(rounds):
        print(f" round {number + 1}/{rounds}", file=sys.stderr, flush=True)
        order = targets if number % 2 == 0 else targets[::-1]
        for target in order:
            results[target.key].append(measure(target, seconds * target.seconds_factor, connections))
    return results


def round_ratios(results: dict[str, list[WrkResult]], key: str, reference: str) -> list[float]:
    """Per round, the throughput of `key` over that of `reference`."""
    return [
        ours.rps / ref.rps for ours, ref in zip(results[key], results[reference], strict=True) if ref.rps > 0
    ]


def cpu_ratios(results: dict[str, list[WrkResult]], key: str, reference: str) -> list[float]:
    """Per round, the server CPU per request of `reference` over that of `key`.

    On a machine with spare cores this is the throughput ratio one CPU-bound worker would reach;
    it moves far less than wall-clock throughput when other work shares the machine.
    """
    return [
        ref.cpu_us_per_request / ours.cpu_us_per_request
        for ours, ref in zip(results[key], results[reference], strict=True)
        if ours.cpu_us_per_request > 0
    ]
