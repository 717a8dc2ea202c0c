"""`callstats demo`: a fresh SQLite database, a key, a campaign and a simulated dialer, served live."""

from __future__ import annotations

import random
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import uvicorn

from callstats.accounts.service import create_key
from callstats.app import create_app
from callstats.calls.lifecycle import RetryRules
from callstats.calls.schemas import EventRules
from callstats.campaigns.phones import InvalidPhone, normalize
from callstats.campaigns.schemas import MAX_CONTACTS_PER_REQUEST, ContactRow, CreateCampaign
from callstats.campaigns.service import add_contacts, create_campaign
from callstats.config import Settings
from callstats.db import migrate
from callstats.db.engine import Database
from callstats.demo.dialer import DemoCampaign, dialer_task
from callstats.logs import log_config

# Real US area codes, so that every generated number is one libphonenumber accepts as valid.
AREA_CODES = (212, 312, 415, 617, 206, 303, 512, 404, 305, 702)
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def run_demo(contacts: int, host: str, port: int, database: str, speed: float) -> None:
    """Set up the demo campaign, print how to query it, and serve until Ctrl-C or SIGTERM."""
    # Listen first: a busy port must fail before the database file (maybe another demo's) is deleted.
    listener = listen(host, port)
    url = fresh_database(Path(database))
    settings = Settings(database_url=url, redis_url=None)
    db = Database(url, settings.db_pool_size, settings.counter_slots)
    campaign, api_key = create_demo_campaign(db, contacts, EventRules.from_settings(settings))
    task = dialer_task(campaign, speed, announce=_say)
    app = create_app(settings, db=db, background=[task])
    bound_port = listener.getsockname()[1]
    _say(f"Dashboard: {base_url(host, bound_port)}/dashboard")
    for line in banner(base_url(host, bound_port), api_key, campaign.campaign_id, contacts, speed):
        _say(line)
    logs = log_config("warning", human=True)  # warnings, and callstats' access lines as plain text
    config = uvicorn.Config(
        app, log_config=logs, log_level="warning", access_log=False, server_header=False, lifespan="on"
    )
    with _signals_end_quietly():
        uvicorn.Server(config).run(sockets=[listener])
    _say("Demo stopped.")


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host and port (0 picks a free port); exits with a clear message if taken."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise SystemExit(f"callstats demo: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listener


def fresh_database(path: Path) -> str:
    """Delete the SQLite file (and its WAL and shared-memory files) and migrate a new one; its URL."""
    for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        leftover.unlink(missing_ok=True)
    url = f"sqlite:///{path.resolve()}"
    migrate.upgrade(url)
    return url


def demo_phones(count: int, seed: int = 2024) -> list[str]:
    """`count` distinct, valid US numbers in E.164, the same ones for the same seed."""
    rng = random.Random(seed)
    phones: dict[str, None] = {}
    while len(phones) < count:
        raw = f"+1{rng.choice(AREA_CODES)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        try:
            phones.setdefault(normalize(raw, "US"))
        except InvalidPhone:
            continue
    return list(phones)


def create_demo_campaign(db: Database, contacts: int, events: EventRules) -> tuple[DemoCampaign, str]:
    """An account with a write key and a campaign of `contacts` contacts in `events.default_region`,
    whose events the dialer records under `events`; the campaign and the key."""
    region = events.default_region
    key = create_key(db, "demo", "write")
    campaign = create_campaign(
        db, key.account_id, CreateCampaign(name=f"Demo campaign ({contacts} contacts)"), region
    )
    phones = demo_phones(contacts)
    for start in range(0, len(phones), MAX_CONTACTS_PER_REQUEST):
        chunk = phones[start : start + MAX_CONTACTS_PER_REQUEST]
        rows = [ContactRow(row=i, phone=p, name=f"Contact {start + i}") for i, p in enumerate(chunk, 1)]
        added = add_contacts(db, key.account_id, campaign.campaign_id, rows, region)
        if added.accepted != len(rows):
            raise RuntimeError(f"demo contacts not all accepted: {added.errors[:3]}")
    rules = RetryRules(campaign.max_attempts, frozenset(campaign.retry_on))
    return DemoCampaign(key.account_id, campaign.campaign_id, tuple(phones), rules, events), key.plaintext


def base_url(host: str, port: int) -> str:
    """The URL a local client reaches the server at (a wildcard host becomes loopback)."""
    reachable = WILDCARD_HOSTS.get(host, host)
    return f"http://[{reachable}]:{port}" if ":" in reachable else f"http://{reachable}:{port}"


def banner(url: str, api_key: str, campaign_id: str, contacts: int, speed: float) -> list[str]:
    """What the demo prints before serving; each line starts with a fixed label."""
    return [
        f"callstats demo: {contacts} contacts, a simulated dialer at {speed:g}x speed.",
        f"Base URL: {url}",
        f"API key:  {api_key}",
        f"Campaign: {campaign_id}",
        f"Try:      curl -s {url}/getCampaignStats/{campaign_id} -H 'x-api-key: {api_key}'",
        "Ctrl-C stops it.",
    ]


@contextmanager
def _signals_end_quietly() -> Iterator[None]:
    """Absorb the SIGINT/SIGTERM uvicorn re-raises after its graceful shutdown, so the exit is clean."""

    def absorb(_signum: int, _frame: FrameType | None) -> None:
        return None

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, absorb) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(line: str) -> None:
    print(line, flush=True)
