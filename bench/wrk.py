"""wrk on loopback: installed if missing, run with one thread, its figures read back as JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"


def ensure_wrk() -> str:
    """The path of wrk, installing the Debian package first when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, timeout=600)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed and could not be installed (apt-get install wrk)")
    return found


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    extra: dict[str, int]
    server_cpu_s: float = 0.0  # CPU the server process used during the run, when measured

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU time per completed request, in microseconds (0 when not measured)."""
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def run(
    url: str,
    seconds: float,
    connections: int = 32,
    script: str = "stats.lua",
    headers: dict[str, str] | None = None,
    args: list[str] | None = None,
    timeout_s: int = 10,
) -> WrkResult:
    """wrk -t1 -c`connections` for `seconds` against a loopback `url`."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the bench only targets loopback, not {url}")
    argv = [
        ensure_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s}s",
    ]
    argv += ["-s", str(LUA / script)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    if args:
        argv += ["--", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout_s + 60, check=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    if done.stderr.strip():
        print("    wrk: " + done.stderr.strip().replace("\n", "\n    wrk: "), file=sys.stderr, flush=True)
    raw: dict[str, int] = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(raw[k] for k in raw if k.startswith("errors_"))
    known = {"requests", "duration_us", "bytes", "p50_us", "p90_us", "p99_us", "max_us"}
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=errors,
        extra={k: v for k, v in raw.items() if k not in known and not k.startswith("errors_")},
    )
