"""The demo: the pure simulation, the dialer on a real database, and `callstats demo` end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import anyio
import httpx
import pytest

from callstats.accounts.service import list_keys
from callstats.app import create_app
from callstats.calls.schemas import EventRules
from callstats.config import Settings
from callstats.core.lifecycle import RetryRules
from callstats.db.engine import Database
from callstats.demo.dialer import dialer_task
from callstats.demo.runner import create_demo_campaign, demo_phones, fresh_database, is_demo_database
from callstats.demo.simulation import DEFAULT_OUTCOME_MIX, DialerConfig, DialerSimulation, SimEvent
from callstats.stats.reconcile import differences
from tests.demo.demo_stats import assert_consistent, get_stats
from tests.servers import CALLSTATS, wait_for_banner


def run_to_end(simulation: DialerSimulation, step: float = 5.0, limit: float = 1e6) -> list[SimEvent]:
    """Every event of the simulation, advancing `step` simulated seconds at a time."""
    events: list[SimEvent] = []
    now = 0.0
    while not simulation.finished:
        assert now < limit, "the simulation does not finish"
        now += step
        events += simulation.advance(now)
    return events


def test_every_contact_ends_final_within_its_attempts() -> None:
    simulation = DialerSimulation(range(400), RetryRules(), seed=7)
    events = run_to_end(simulation)
    assert set(simulation.states()) <= {"completed", "failed"}
    assert sum(simulation.states().values()) == 400
    starts = Counter(e.contact for e in events if e.type == "call.started")
    assert set(starts) == set(range(400))
    assert max(starts.values()) <= 3
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_outcome_mix_and_durations_are_realistic() -> None:
    events = run_to_end(DialerSimulation(range(3000), RetryRules(), seed=11))
    ended = [e for e in events if e.type == "call.ended"]
    mix = Counter(e.outcome for e in ended)
    for outcome, share in DEFAULT_OUTCOME_MIX.items():
        assert abs(mix[outcome] / len(ended) - share) < 0.03, (outcome, mix)
    talk = [e.duration_seconds for e in ended if e.outcome == "answered"]
    assert min(talk) >= 20 and max(talk) <= 600
    assert 100 < sum(talk) / len(talk) < 300
    assert all(e.duration_seconds == 0 for e in ended if e.outcome in ("busy", "no_answer", "failed"))


def test_never_more_live_calls_than_lines_and_retries_wait() -> None:
    config = DialerConfig(lines=5, retry_delay=(100.0, 200.0))
    events = run_to_end(DialerSimulation(range(100), RetryRules(), config, seed=3))
    live, peak = 0, 0
    last_end: dict[int, float] = {}
    for event in events:
        if event.type == "call.started":
            live += 1
            assert event.at >= last_end.get(event.contact, -1e9) + 100
        elif event.type == "call.ended":
            live -= 1
            last_end[event.contact] = event.at
        peak = max(peak, live)
    assert peak == 5


def test_no_retry_rules_dial_each_contact_once() -> None:
    simulation = DialerSimulation(range(200), RetryRules(max_attempts=1), seed=5)
    events = run_to_end(simulation)
    assert sum(1 for e in events if e.type == "call.started") == 200
    assert simulation.states()["completed"] + simulation.states()["failed"] == 200


def test_the_same_seed_gives_the_same_campaign() -> None:
    def events(seed: int) -> list[SimEvent]:
        return run_to_end(DialerSimulation(range(50), RetryRules(), seed=seed))

    assert events(1) == events(1)
    assert events(1) != events(2)


def test_demo_phones_are_distinct_valid_and_stable() -> None:
    phones = demo_phones(500)
    assert len(set(phones)) == 500
    assert all(p.startswith("+1") and len(p) == 12 for p in phones)
    assert demo_phones(500) == phones


async def test_dialer_drives_a_campaign_to_completion_through_ingestion(tmp_path: Path) -> None:
    url = fresh_database(tmp_path / "dialer.db")
    db = Database(url, pool_size=2, counter_slots=1)
    try:
        campaign, key = create_demo_campaign(
            db, 60, EventRules.from_settings(Settings(database_url=url, default_region="US"))
        )
        announced: list[str] = []
        task = dialer_task(campaign, speed=20_000, announce=announced.append, seed=9, tick=0.05)
        with anyio.fail_after(30):
            await task(db)
        assert announced and announced[0].startswith("Campaign complete")
        with db.read() as conn:
            assert differences(conn, campaign.campaign_id) == []
        app = create_app(Settings(database_url=url, redis_url=None), db=db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo.test") as client:
            response = await client.get(
                f"/getCampaignStats/{campaign.campaign_id}", headers={"x-api-key": key}
            )
        stats = response.json()["data"]
        assert stats["total_contacts"] == 60
        assert stats["calls_completed"] + stats["calls_failed"] == 60
        assert stats["completed_at"] is not None
        assert sum(stats["call_status_breakdown"].values()) == 60
    finally:
        db.dispose()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_serves_moving_stats_and_stops_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [str(CALLSTATS), "demo", "--contacts", "200", "--port", "0"]
    command += ["--database", str(tmp_path / "demo.db"), "--speed", "200"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=stdout, stderr=stderr)
    try:
        banner = wait_for_banner(out, proc)
        base, key, campaign_id = banner["Base URL"], banner["API key"], banner["Campaign"]
        assert base.startswith("http://127.0.0.1:") and not base.endswith(":0")
        assert banner["Try"] == f"curl -s {base}/getCampaignStats/{campaign_id} -H 'x-api-key: {key}'"
        snapshots = [get_stats(base, campaign_id, key)]
        for _ in range(8):
            time.sleep(0.5)
            snapshots.append(get_stats(base, campaign_id, key))
        for stats in snapshots:
            assert_consistent(stats, 200)
        finals = [s["calls_completed"] + s["calls_failed"] for s in snapshots]
        assert finals == sorted(finals) and finals[-1] > finals[0]
        assert len({str(s) for s in snapshots}) >= 4
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    output = out.read_text() + err.read_text()
    assert "Traceback" not in output
    assert out.read_text().splitlines()[-1] == "Demo stopped."


# ---------- the demo's database: only a new file or one the demo made ----------


def start_demo(tmp_path: Path, database: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`callstats demo` on a free port with this --database; the process and its output files."""
    out, err = tmp_path / f"{database.name}.out", tmp_path / f"{database.name}.err"
    command = [str(CALLSTATS), "demo", "--contacts", "20", "--port", "0", "--database", str(database), *extra]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=stdout, stderr=stderr)
    return proc, out, err


def run_demo_until_banner(tmp_path: Path, database: Path, *extra: str) -> dict[str, str]:
    """Start the demo, read its banner, stop it with SIGTERM; the banner."""
    proc, out, _ = start_demo(tmp_path, database, *extra)
    try:
        banner = wait_for_banner(out, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return banner


def refused(tmp_path: Path, database: Path) -> str:
    """The demo's one-line refusal (exit code 2)."""
    proc, out, err = start_demo(tmp_path, database)
    assert proc.wait(timeout=60) == 2
    lines = err.read_text().strip().splitlines()
    assert len(lines) == 1 and out.read_text() == "", (lines, out.read_text())
    return lines[0]


def callstats_database(path: Path) -> str:
    """A real callstats database made as an operator would (migrate, keys create); a key id in it."""
    env = {"PATH": os.environ.get("PATH", ""), "CALLSTATS_DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run([str(CALLSTATS), "migrate"], env=env, check=True, capture_output=True, timeout=60)
    made = subprocess.run(
        [str(CALLSTATS), "keys", "create", "--account", "acme", "--json"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    key_id: str = json.loads(made.stdout)["key_id"]
    return key_id


def test_the_demo_refuses_a_file_it_did_not_create(tmp_path: Path) -> None:
    """A text file, a directory and a real callstats database are left as they were (an empty file
    counts as new: tests/test_cli_startup.py)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a database\n")
    real = tmp_path / "real.db"
    key_id = callstats_database(real)
    before = real.read_bytes()
    assert "notes.txt is a file the demo did not create" in refused(tmp_path, notes)
    assert "is not a file" in refused(tmp_path, tmp_path)
    line = refused(tmp_path, real)
    assert "real.db is an SQLite database the demo did not create" in line and "--force" in line
    assert notes.read_text() == "my notes, not a database\n"
    assert real.read_bytes() == before
    db = Database(f"sqlite:///{real}", pool_size=1)
    try:
        assert [k.key_id for k in list_keys(db)] == [key_id]
    finally:
        db.dispose()


def test_the_demo_reuses_its_own_database_and_force_replaces_any(tmp_path: Path) -> None:
    """A database an earlier demo made is replaced by a fresh one; --force replaces anything."""
    database = tmp_path / "demo.db"
    first = run_demo_until_banner(tmp_path, database)
    assert is_demo_database(database.read_bytes()[:100])
    second = run_demo_until_banner(tmp_path, database)
    assert second["Campaign"] != first["Campaign"] and second["API key"] != first["API key"]

    notes = tmp_path / "notes.db"
    notes.write_text("replace me\n")
    forced = run_demo_until_banner(tmp_path, notes, "--force")
    assert forced["Campaign"] and is_demo_database(notes.read_bytes()[:100])
    real = tmp_path / "real.db"
    callstats_database(real)
    run_demo_until_banner(tmp_path, real, "--force")
    assert is_demo_database(real.read_bytes()[:100])


def test_a_taken_port_is_one_line_and_leaves_the_database(tmp_path: Path) -> None:
    """The port is checked before the (demo's own) database is replaced."""
    database = tmp_path / "demo.db"
    run_demo_until_banner(tmp_path, database)
    before = database.read_bytes()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [str(CALLSTATS), "demo", "--port", str(port), "--database", str(database)]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert done.stderr.strip() == f"callstats demo: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert database.read_bytes() == before
