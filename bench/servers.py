"""Servers under test, as subprocesses on 127.0.0.1 that are always stopped at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from bench.dataset import ROOT

HOST = "127.0.0.1"
VENV_BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through Fleet, which stops every server


def exit_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit, so a stopped bench still stops its servers."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)


@dataclass
class Server:
    """One running server process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://{HOST}:{self.port}"

    def memory_mb(self, field: str = "VmRSS") -> float:
        """Resident memory (VmRSS) or its peak (VmHWM) of the server process, in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, limit_s: float = 60.0) -> None:
        """Wait (at most `limit_s`) until the server stops burning CPU, e.g. on abandoned requests."""
        deadline = time.monotonic() + limit_s
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.cpu_seconds()
            if now - before < 0.02:
                return
            before = now

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s, for this process (and its group, which it leads)."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


BENCH_SECRET_KEY = Fernet.generate_key().decode()


class Fleet:
    """Every server the bench started; `with Fleet() as fleet:` stops them all on the way out."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: list[Server] = []

    def __enter__(self) -> Fleet:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        for server in reversed(self.servers):
            server.stop()

    def start(self, name: str, argv: list[str], env: dict[str, str], port: int, probe: str) -> Server:
        """Start `argv` and wait until GET `probe` answers (any status below 500)."""
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        server = Server(name, port, process, log)
        self.servers.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.base_url + probe, timeout=2).status_code < 500:
                    return server
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer within 60 s; see {log}")

    def callstats(self, name: str, database_url: str, redis_url: str | None, rate_limit: str) -> Server:
        """`callstats serve` on its own port (one uvicorn worker, httptools and uvloop)."""
        port = free_port()
        env = {
            "CALLSTATS_DATABASE_URL": database_url,
            "CALLSTATS_STATS_RATE_LIMIT": rate_limit,
            "CALLSTATS_LOG_LEVEL": "warning",
            # carrier connections need a key to seal their secrets with on PostgreSQL (docs/carriers.md)
            "CALLSTATS_SECRET_KEY": BENCH_SECRET_KEY,
        }
        if redis_url:
            env["CALLSTATS_REDIS_URL"] = redis_url
        argv = [str(VENV_BIN / "callstats"), "serve", "--host", HOST, "--port", str(port)]
        return self.start(name, argv, env, port, "/health")

    def asgi(self, name: str, app: str, env: dict[str, str]) -> Server:
        """A bench ASGI app under uvicorn, with the same httptools and uvloop as callstats."""
        port = free_port()
        argv = [
            str(VENV_BIN / "python"),
            "-m",
            "uvicorn",
            app,
            "--host",
            HOST,
            "--port",
            str(port),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        return self.start(name, argv, env, port, "/")
