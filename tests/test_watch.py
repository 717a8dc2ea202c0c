"""`callstats watch`: the SSE parser, the views, and the command against a real server."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from callstats.urls import BadUrl, check_url
from callstats.watch import (
    SseEvent,
    WatchGaveUp,
    WatchState,
    follow,
    render,
    retry_delay,
    sse_events,
    summary_line,
)
from tests.factories import add_contacts, create_campaign, phones, started_call
from tests.seed import SEED_EXAMPLE
from tests.servers import callstats_argv, free_port
from tests.stream.helpers import new_key, post_events, serving

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STATS: dict[str, Any] = SEED_EXAMPLE


def test_sse_events_parses_messages_and_comments() -> None:
    """Fields, multi-line data, comments (pings) and a last event without a trailing blank line."""
    lines = ["retry: 2000", "", "id: 7", "event: stats", "data: {", "data: }", "", ": ping", "", "data:x"]
    assert list(sse_events(lines)) == [
        SseEvent(),
        SseEvent(event="stats", data="{\n}", id="7"),
        SseEvent(comment="ping"),
        SseEvent(data="x"),
    ]


def test_views_show_every_number() -> None:
    """The terminal view and the one-line form carry the seed's numbers."""
    state = WatchState(campaign_id=STATS["campaign_id"], stats=STATS, status="live")
    console = Console(record=True, width=110, color_system=None)
    console.print(render(state))
    screen = console.export_text()
    for text in ("Q4 Sales Campaign", "900 / 1,000 final (90.0 %)", "Completed 750", "Failed 150", "83.33 %"):
        assert text in screen, screen
    assert "4 min 05 s" in screen and "51 h 02 min" in screen and "live" in screen
    line = summary_line(state)
    assert "900/1000 final (90.0%)" in line and "busy=80" in line and "voicemail=100" in line


def test_follow_reconnects_with_back_off() -> None:
    """With no server to talk to, each attempt names the URL and waits twice as long, up to 30 s."""
    waits: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    with httpx.Client(base_url=url, timeout=2) as client:
        states = follow(client, WatchState(campaign_id=STATS["campaign_id"]), sleep=waits.append)
        details = [next(states).detail for _ in range(8)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert all(d.startswith(f"cannot connect to {url}; retrying in") for d in details), details
    assert [retry_delay(n) for n in (1, 2, 3, 6, 50)] == [1.0, 2.0, 4.0, 30.0, 30.0]


def test_follow_gives_up_after_its_timeout() -> None:
    """give_up_after: the waits never pass it, and then WatchGaveUp names the URL."""
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    url = f"http://127.0.0.1:{free_port()}"
    with httpx.Client(base_url=url, timeout=2) as client:
        states = follow(
            client, WatchState(campaign_id="c"), sleep=sleep, give_up_after=5, clock=lambda: now[0]
        )
        with pytest.raises(WatchGaveUp, match=f"cannot connect to {re.escape(url)}; gave up after 5 s"):
            for _ in states:
                pass
    assert waits == [1.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("127.0.0.1:8000", "must start with http:// or https://"),
        ("localhost", "must start with http:// or https://"),
        ("ftp://127.0.0.1", "must start with http:// or https://"),
        ("http://", "names no host"),
        ("http://[::1", "is not a URL"),
    ],
)
def test_a_url_that_cannot_work_is_refused_at_once(url: str, why: str) -> None:
    """No retry: one line saying why, exit code 2, before any connection."""
    with pytest.raises(BadUrl, match=re.escape(why)):
        check_url(url)
    done = subprocess.run(
        callstats_argv("watch", STATS["campaign_id"], "--url", url),
        env=watch_env("k"),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and why in lines[0], lines
    assert check_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"


def test_a_dead_server_is_retried_until_the_timeout(tmp_path: Path) -> None:
    """Connection refused, and a server that accepts but never answers: each is retried with a message
    naming the URL until --timeout ends the command with exit code 1."""
    refused = f"http://127.0.0.1:{free_port()}"
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        mute = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for url, reason in (
            (refused, f"cannot connect to {refused}"),
            (mute, f"no data from {mute} for a while"),
        ):
            done = subprocess.run(
                callstats_argv("watch", STATS["campaign_id"], "--url", url, "--timeout", "2.5"),
                env=watch_env("k"),
                capture_output=True,
                timeout=120,
            )
            output = done.stdout.decode()
            assert done.returncode == 1, done
            assert f"{reason}; gave up after 2.5 s (--timeout)" in done.stderr.decode(), done.stderr
            if url == refused:
                assert f"{reason}; retrying in 1 s" in output, output


# ---------- the command, against a real server ----------


# The command as a person at a terminal runs it: Ctrl-C (SIGINT) raises KeyboardInterrupt even when
# this test run was started with SIGINT ignored (nohup, a background job, some CI runners), which a
# child process inherits and Python then keeps.
AT_A_TERMINAL = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'callstats'; from callstats.cli import main; main()"
)


class Command:
    """`callstats watch` as a subprocess, stopped by Ctrl-C; its output lines land in a queue."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        argv = [sys.executable, "-c", AT_A_TERMINAL, "watch", *args]
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output: queue.Queue[str] = queue.Queue()
        self.raw = ""
        self.seen = ""
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self.output.put(raw.decode(errors="replace"))

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        """Everything printed so far (with escape codes), once `text` is part of it (without)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            try:
                self.raw += self.output.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{text!r} not printed; got:\n{self.seen}") from None
            self.seen = ANSI.sub("", self.raw)
        return self.raw

    def stop(self) -> None:
        """Interrupt it as Ctrl-C would."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def live_campaign(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str, str, list[str]]]:
    """(base URL, key, campaign id, phones) on a running server."""
    key = new_key(database_url)
    with (
        serving(database_url, tmp_path, stream_heartbeat_seconds="1") as server,
        httpx.Client(headers={"x-api-key": key}, timeout=30) as http,
    ):
        campaign_id = create_campaign(http, server.base_url, "Watched campaign")
        numbers = phones(3)
        add_contacts(http, server.base_url, campaign_id, numbers)
        yield server.base_url, key, campaign_id, numbers


def watch_env(key: str | None = None, **extra: str) -> dict[str, str]:
    """The command's environment: ours without CALLSTATS_*, the key in CALLSTATS_API_KEY."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CALLSTATS_")}
    if key:
        env["CALLSTATS_API_KEY"] = key
    return {**env, "COLUMNS": "120", **extra}


def test_prints_a_line_per_change_when_piped(live_campaign: tuple[str, str, str, list[str]]) -> None:
    """Piped, each change is one line; the key comes from CALLSTATS_API_KEY."""
    base_url, key, campaign_id, numbers = live_campaign
    command = Command([campaign_id, "--url", base_url], watch_env(key))
    try:
        command.wait_for("Watched campaign: 0/3 final (0.0%)")
        with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
            post_events(http, base_url, started_call(campaign_id, numbers[0], "w0"))
        command.wait_for("in_progress=1 pending=2")
    finally:
        command.stop()
    assert command.process.returncode == 0


def test_redraws_in_place_on_a_terminal(live_campaign: tuple[str, str, str, list[str]]) -> None:
    """On a terminal (TTY_COMPATIBLE=1 tells rich it is one) the view is redrawn in place."""
    base_url, key, campaign_id, numbers = live_campaign
    command = Command([campaign_id, "--url", base_url, "--key", key], watch_env(TTY_COMPATIBLE="1"))
    try:
        command.wait_for("In progress 0")
        with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
            post_events(http, base_url, started_call(campaign_id, numbers[0], "w1"))
        screen = command.wait_for("In progress 1")
    finally:
        command.stop()
    assert "\x1b[1A" in screen or "\x1b[2K" in screen, "not redrawn in place"
    assert "Watched campaign" in screen and "live" in screen


def test_refusals_exit_non_zero_with_the_server_message(
    live_campaign: tuple[str, str, str, list[str]],
) -> None:
    """An unknown campaign or a wrong key: the server's message on stderr and exit code 1 (an id that is
    not a UUID never reaches the server: tests/test_cli_startup.py)."""
    base_url, key, campaign_id, _ = live_campaign
    cases = [
        ("00000000-0000-4000-8000-000000000000", key, "Campaign not found (HTTP 404)"),
        (campaign_id, "cs_wrong", "(HTTP 401)"),
    ]
    for target, used_key, message in cases:
        done = subprocess.run(
            callstats_argv("watch", target, "--url", base_url),
            env=watch_env(used_key),
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 1, done
        assert message in done.stderr.decode()


def test_ctrl_c_stops_it_when_the_tests_were_started_with_sigint_ignored(
    live_campaign: tuple[str, str, str, list[str]],
) -> None:
    """A run under nohup or in a background job starts with SIGINT ignored, and children inherit that:
    the command is still stopped by Ctrl-C, exit code 0."""
    base_url, key, campaign_id, _ = live_campaign
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        command = Command([campaign_id, "--url", base_url], watch_env(key))
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        command.wait_for("Watched campaign: 0/3 final (0.0%)")
    finally:
        command.stop()
    assert command.process.returncode == 0


def test_a_live_stream_outlasts_the_timeout(live_campaign: tuple[str, str, str, list[str]]) -> None:
    """--timeout bounds getting a connection, not a live stream: silences longer than it (the
    server's heartbeat here is 1 s) do not break the stream."""
    base_url, key, campaign_id, numbers = live_campaign
    command = Command([campaign_id, "--url", base_url, "--timeout", "0.3"], watch_env(key))
    try:
        command.wait_for("Watched campaign: 0/3 final (0.0%)")
        time.sleep(3)
        with httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
            post_events(http, base_url, started_call(campaign_id, numbers[0], "w2"))
        command.wait_for("in_progress=1 pending=2")
    finally:
        command.stop()
    assert "reconnecting" not in command.seen and "gave up" not in command.seen, command.seen
    assert command.process.returncode == 0
