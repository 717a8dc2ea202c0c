"""`callstats demo --via twilio|retell|vapi`: the dialer's calls go through a carrier connection as the
platform's signed webhooks, and the campaign ends with the numbers the in-process dialer gives."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select

from callstats.app import create_app
from callstats.calls.schemas import EventRules
from callstats.config import Settings
from callstats.db.engine import Database
from callstats.db.schema import carrier_callbacks
from callstats.demo import platforms
from callstats.demo.dialer import DemoCampaign, dialer_task
from callstats.demo.runner import WEBHOOK_ROUTE, QuietWebhooks, connect_carrier, create_demo_campaign
from callstats.stats.reconcile import differences
from tests.demo.demo_stats import assert_consistent, get_stats
from tests.servers import CALLSTATS, wait_for_banner

CONTACTS = 60
SEED = 9
SAME = (
    "total_contacts",
    "calls_completed",
    "calls_failed",
    "calls_in_progress",
    "calls_pending",
    "success_rate",
    "total_call_duration",
    "average_call_duration",
    "call_status_breakdown",
)
"""Every figure of the stats but the times (Twilio's Timestamp keeps whole seconds; Retell reports a
call from the moment it connects)."""
VERDICTS = {"twilio": {"applied"}, "retell": {"applied"}, "vapi": {"applied", "ignored"}}
"""Every callback of the demo is applied, but Vapi's status-update `ended` (the report ends the call)."""


async def dial_to_the_end(campaign: DemoCampaign, db: Database, **via: Any) -> None:
    """Run the demo's dialer over the whole campaign, at a speed that takes a second or two."""
    announced: list[str] = []
    task = dialer_task(campaign, speed=20_000, announce=announced.append, seed=SEED, tick=0.05, **via)
    with anyio.fail_after(60):
        await task(db)
    assert announced and announced[0].startswith("Campaign complete"), announced


def verdicts(db: Database, connection_id: str) -> Counter[str]:
    with db.read() as conn:
        rows = conn.execute(
            select(carrier_callbacks.c.verdict).where(carrier_callbacks.c.connection_id == connection_id)
        )
        return Counter(row.verdict for row in rows)


@pytest.mark.parametrize("provider", platforms.PROVIDERS)
async def test_a_campaign_through_webhooks_ends_as_the_in_process_one(
    settings: Settings, provider: str
) -> None:
    """The same simulated campaign twice, once recorded in process and once posted as `provider`'s
    signed webhooks to the app: the same final numbers, reconciled, every callback applied."""
    keyed = settings.model_copy(update={"secret_key": SecretStr(Fernet.generate_key().decode())})
    db = Database(keyed.database_url, pool_size=4, counter_slots=keyed.counter_slots)
    app = create_app(keyed, db=db)
    try:
        rules = EventRules.from_settings(keyed)
        direct, direct_key = create_demo_campaign(db, CONTACTS, rules)
        await dial_to_the_end(direct, db)
        hooked, hooked_key = create_demo_campaign(db, CONTACTS, rules)
        route = connect_carrier(db, keyed, hooked, provider, "http://demo.test")
        assert route.signed_url == route.post_url
        assert route.signed_url.startswith(f"http://demo.test/webhooks/{provider}/{route.connection_id}?")
        await dial_to_the_end(hooked, db, via=route, transport=httpx.ASGITransport(app=app))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://demo.test"
        ) as http:
            stats = {}
            for campaign, key in ((direct, direct_key), (hooked, hooked_key)):
                answer = await http.get(
                    f"/getCampaignStats/{campaign.campaign_id}", headers={"x-api-key": key}
                )
                stats[campaign.campaign_id] = answer.json()["data"]
        expected, got = stats[direct.campaign_id], stats[hooked.campaign_id]
        assert {k: got[k] for k in SAME} == {k: expected[k] for k in SAME}
        assert got["calls_completed"] + got["calls_failed"] == CONTACTS and got["completed_at"] is not None
        assert got["total_call_duration"] > 0
        with db.read() as conn:
            assert differences(conn, hooked.campaign_id) == []
        seen = verdicts(db, route.connection_id)
        assert set(seen) == VERDICTS[provider], seen
        assert seen["applied"] >= 2 * CONTACTS
    finally:
        await app.aclose()


async def test_behind_a_public_url_the_dialer_signs_it_and_posts_to_itself(settings: Settings) -> None:
    """With CALLSTATS_PUBLIC_URL the platform signs the public webhook URL (what a real platform would
    call) while the dialer posts over loopback: the server checks the signature against the public
    URL, so every callback still holds."""
    keyed = settings.model_copy(
        update={
            "secret_key": SecretStr(Fernet.generate_key().decode()),
            "public_url": "https://calls.example.com",
        }
    )
    db = Database(keyed.database_url, pool_size=4, counter_slots=keyed.counter_slots)
    app = create_app(keyed, db=db)
    try:
        campaign, _ = create_demo_campaign(db, 10, EventRules.from_settings(keyed))
        route = connect_carrier(db, keyed, campaign, "twilio", "http://127.0.0.1:8123")
        path_and_query = f"/webhooks/twilio/{route.connection_id}?campaign_id={campaign.campaign_id}"
        assert route.signed_url == "https://calls.example.com" + path_and_query
        assert route.post_url == "http://127.0.0.1:8123" + path_and_query
        await dial_to_the_end(campaign, db, via=route, transport=httpx.ASGITransport(app=app))
        seen = verdicts(db, route.connection_id)
        assert set(seen) == {"applied"} and seen["applied"] >= 30, seen
        with db.read() as conn:
            assert differences(conn, campaign.campaign_id) == []
    finally:
        await app.aclose()


def test_quiet_webhooks_drops_only_the_webhooks_answered_2xx() -> None:
    def line(route: str, status: int | None) -> logging.LogRecord:
        record = logging.makeLogRecord({"msg": "request", "route": route, "status": status})
        return record

    quiet = QuietWebhooks()
    assert not quiet.filter(line(WEBHOOK_ROUTE, 204)) and not quiet.filter(line(WEBHOOK_ROUTE, 200))
    assert quiet.filter(line(WEBHOOK_ROUTE, 403)) and quiet.filter(line(WEBHOOK_ROUTE, None))
    assert quiet.filter(line("/getCampaignStats/{campaignId}", 200))


def demo_via(tmp_path: Path, provider: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`callstats demo --via provider` on a free port; the process and its output files."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [str(CALLSTATS), "demo", "--via", provider, "--contacts", "200", "--port", "0"]
    command += ["--database", str(tmp_path / "demo.db"), "--speed", "200"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=stdout, stderr=stderr)
    return proc, out, err


@pytest.mark.parametrize("provider", platforms.PROVIDERS)
def test_the_demo_via_a_platform_moves_the_numbers(tmp_path: Path, provider: str) -> None:
    proc, out, err = demo_via(tmp_path, provider)
    try:
        banner = wait_for_banner(out, proc)
        base, key, campaign_id = banner["Base URL"], banner["API key"], banner["Campaign"]
        assert banner["Carrier"].startswith(platforms.LABELS[provider])
        webhook = banner["Webhook"]
        assert webhook.startswith(f"{base}/webhooks/{provider}/")
        assert webhook.endswith(f"?campaign_id={campaign_id}")
        snapshots = [get_stats(base, campaign_id, key)]
        for _ in range(8):
            time.sleep(0.5)
            snapshots.append(get_stats(base, campaign_id, key))
        for stats in snapshots:
            assert_consistent(stats, 200)
        finals = [s["calls_completed"] + s["calls_failed"] for s in snapshots]
        assert finals == sorted(finals) and finals[-1] > finals[0]
        assert snapshots[-1]["total_call_duration"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    errors = err.read_text()
    assert "Traceback" not in errors and "WARNING" not in errors, errors[-2000:]
    hooks = [line for line in errors.splitlines() if "/webhooks/" in line]
    assert hooks == [], hooks  # the dialer's own webhooks leave no access lines
    assert out.read_text().splitlines()[-1] == "Demo stopped."
    db = Database(f"sqlite:///{tmp_path / 'demo.db'}", pool_size=1)
    try:
        with db.read() as conn:
            assert differences(conn, campaign_id) == []
        seen = verdicts(db, webhook.split("/")[-1].split("?")[0])
        assert set(seen) <= VERDICTS[provider] and seen["applied"] > 0, seen
    finally:
        db.dispose()


def test_a_bad_via_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    command = [str(CALLSTATS), "demo", "--via", "plivo", "--port", "0", "--database", str(database)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "callstats demo: --via 'plivo' is not a platform the demo knows: use twilio, retell, vapi"
    )
    assert not database.exists()
