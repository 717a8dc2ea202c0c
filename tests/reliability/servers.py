"""Real processes for the reliability tests: private PostgreSQL and Redis servers, a callstats server.

Each is started by the test on a free loopback port in a temporary directory, never
the shared servers (5432, 6379), so a test may freeze, stop or kill it at will.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(ready: object, seconds: float, what: str) -> float:
    """Poll `ready()` until it is true; the seconds it took. Fails the test after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with contextlib.suppress(Exception):
            if ready():  # type: ignore[operator]
                return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what} not ready after {seconds} s")


def descendants(pid: int) -> list[int]:
    """Every live process under `pid` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def signal_tree(pid: int, signum: int) -> None:
    """Send `signum` to `pid` first, then to every process under it."""
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signum)


class PrivatePostgres:
    """A PostgreSQL cluster of its own: initdb into a temporary directory, served on a free loopback port.

    initdb refuses to run as root, so as root the cluster's processes run as the `postgres` user
    (Popen's user=, no wrapper process: a stopped postmaster must not stop a parent su or runuser).
    fsync is off (a killed server loses nothing the OS has: only a machine crash would), durability of
    commits is PostgreSQL's default.
    """

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="callstats-pg-"))
        self.data = self.root / "data"
        self.as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": self.root}
        self.url = f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None

    def init(self) -> None:
        """Create the cluster (trust authentication on loopback only)."""
        command = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        subprocess.run([*command, "--no-sync", "-E", "UTF8"], check=True, capture_output=True, **self.as_user)

    def start(self) -> float:
        """Start the server; seconds until it accepts connections."""
        command = [
            str(self.bin / "postgres"),
            *("-D", str(self.data), "-p", str(self.port), "-k", str(self.root)),
            *("-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off", "-c", "max_connections=200"),
        ]
        with open(self.root / "server.log", "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(command, stdout=log, stderr=log, **self.as_user)
        return wait_until(self._accepts, 30, "private PostgreSQL")

    def _accepts(self) -> bool:
        ready = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(self.port)], check=False
        )
        return ready.returncode == 0

    def postmaster_pid(self) -> int:
        """The postmaster's pid."""
        assert self.process is not None
        return self.process.pid

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: TCP still connects, nothing ever answers."""
        signal_tree(self.postmaster_pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT everything frozen."""
        signal_tree(self.postmaster_pid(), signal.SIGCONT)

    def stop(self, mode: str = "immediate") -> None:
        """pg_ctl stop (-m immediate: like a crash, recovery at the next start; fast: a clean shutdown)."""
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "stop", "-m", mode, "-w"]
        subprocess.run(command, check=True, capture_output=True, **self.as_user)
        if self.process is not None:
            self.process.wait(10)
            self.process = None

    def destroy(self) -> None:
        """Stop the server (thawed first) and delete the cluster."""
        with contextlib.suppress(Exception):
            self.thaw()
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.stop("immediate")
            if self.process is not None:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_bin() -> Path:
    """The newest /usr/lib/postgresql/*/bin holding initdb and postgres."""
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    usable = [p for p in candidates if (p / "initdb").exists() and (p / "postgres").exists()]
    if not usable:
        raise FileNotFoundError("no /usr/lib/postgresql/*/bin with initdb and postgres")
    return max(usable, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def private_postgres_unavailable() -> str | None:
    """Why a private cluster cannot be started here, or None."""
    try:
        postgres_bin()
    except FileNotFoundError as exc:
        return str(exc)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user for initdb"
    return None


class PrivateRedis:
    """A redis-server of its own on a free loopback port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start it; seconds until it answers PING."""
        self.process = subprocess.Popen(
            [
                str(shutil.which("redis-server")),
                *("--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return wait_until(self._pong, 10, "private Redis")

    def _pong(self) -> bool:
        with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def pid(self) -> int:
        """The server's pid."""
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL it (its port is refused until `start`)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class CallstatsServer:
    """`callstats serve` in a process of its own, on a free loopback port."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CALLSTATS_")}
        self.env = {**inherited, **env, "CALLSTATS_LOG_LEVEL": "warning"}
        self.log_path = root / f"callstats-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> float:
        """Start it; seconds until /health answers."""
        command = [str(Path(sys.executable).parent / "callstats"), "serve", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        self.starts += 1
        return wait_until(self._healthy, 30, "callstats serve")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"callstats serve exited: {self.log_path.read_text()[-2000:]}")
        return httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, requests in flight lost."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not left after 10 s."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def log_tail(self) -> str:
        """The end of its log (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


@contextlib.contextmanager
def serving(env: dict[str, str], root: Path) -> Iterator[CallstatsServer]:
    """A started callstats server, stopped at the end."""
    server = CallstatsServer(env, root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
