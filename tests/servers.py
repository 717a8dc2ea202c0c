"""Real callstats processes for the tests: `callstats serve` subprocesses, the CLI, the demo's banner.

Each server leads its own process group (uvicorn workers included) on a free loopback port and
logs to a file the failure messages quote.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"
STARTUP_S = 60.0
STOP_S = 10.0
CALLSTATS = Path(sys.executable).parent / "callstats"
CLI_TIMEOUT_S = 120


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, redis_url: str | None = None, **settings: str) -> dict[str, str]:
    """The environment of a callstats subprocess: ours minus any CALLSTATS_*, plus these settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CALLSTATS_")}
    env["CALLSTATS_DATABASE_URL"] = database_url
    env["CALLSTATS_LOG_LEVEL"] = "warning"
    if redis_url:
        env["CALLSTATS_REDIS_URL"] = redis_url
    env.update({f"CALLSTATS_{name.upper()}": value for name, value in settings.items()})
    return env


def callstats_argv(*args: str) -> list[str]:
    """The `callstats` command line, run by this interpreter."""
    return [sys.executable, "-m", "callstats.cli", *args]


@dataclass
class ServerProcess:
    """One `callstats serve` subprocess, leading its own process group (uvicorn workers included)."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://{HOST}:{self.port}"

    def log_tail(self) -> str:
        """The end of the server's output, for failure messages."""
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or a lost host would."""
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_S)

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL after STOP_S seconds."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                self.kill()
        # Workers outlive a killed parent only briefly; make sure none is left behind.
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def start_server(
    env: dict[str, str], log_dir: Path, workers: int = 1, port: int | None = None
) -> ServerProcess:
    """`callstats serve` on `port` (a free one by default); returns once /ready answers 200.

    It waits at most STARTUP_S seconds. A stopped server's port restarts it where its clients expect it.
    """
    port = port or free_port()
    log = log_dir / f"server-{port}-{uuid.uuid4().hex[:6]}.log"
    argv = callstats_argv("serve", "--host", HOST, "--port", str(port), "--workers", str(workers))
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = ServerProcess(port, process, log)
    try:
        wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_ready(server: ServerProcess) -> None:
    """Poll /ready until it answers 200; fail with the server's log otherwise."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.base_url + "/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"server not ready within {STARTUP_S:.0f} s:\n{server.log_tail()}")


@contextlib.contextmanager
def running_servers(
    env: dict[str, str], log_dir: Path, count: int, workers: int = 1
) -> Iterator[list[ServerProcess]]:
    """`count` servers with the same settings, all stopped on the way out."""
    servers: list[ServerProcess] = []
    try:
        for _ in range(count):
            servers.append(start_server(env, log_dir, workers))
        yield servers
    finally:
        for server in servers:
            server.stop()


def issue_key(env: dict[str, str], scope: str = "write") -> str:
    """A key of a new account, from `callstats keys create --json`."""
    argv = callstats_argv(
        "keys", "create", "--account", f"acct-{uuid.uuid4().hex[:12]}", "--scope", scope, "--json"
    )
    done = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=True)
    key: str = json.loads(done.stdout)["key"]
    return key


def wait_for_banner(out: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, str]:
    """The labelled lines the demo prints before serving."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the demo exited early: {out.read_text()}"
        lines = dict(line.split(":", 1) for line in out.read_text().splitlines() if ":" in line)
        if "Try" in lines:
            return {label: value.strip() for label, value in lines.items()}
        time.sleep(0.1)
    raise AssertionError(f"no banner within {timeout} s: {out.read_text()!r}")


def run_cli(base_url: str, key: str, *args: str, command: str = "import") -> subprocess.CompletedProcess[str]:
    """`callstats import ...` (or another `command`) against a server, with --url and --key given through
    the environment."""
    env = {**server_env("sqlite:///unused.db"), "CALLSTATS_URL": base_url, "CALLSTATS_API_KEY": key}
    argv = callstats_argv(command, *args)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
