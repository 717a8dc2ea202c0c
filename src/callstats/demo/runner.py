"""`callstats demo`: a fresh SQLite database, a key, a campaign and a simulated dialer, served live."""

from __future__ import annotations

import fcntl
import logging
import os
import random
import secrets
import signal
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode, urlsplit

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from callstats.accounts.service import create_key
from callstats.app import create_app
from callstats.calls.schemas import EventRules
from callstats.campaigns.schemas import MAX_CONTACTS_PER_REQUEST, ContactRow, CreateCampaign
from callstats.campaigns.service import add_contacts, create_campaign
from callstats.carriers.schemas import CreateCarrierConnection
from callstats.carriers.service import create_connection
from callstats.config import Settings
from callstats.core.lifecycle import RetryRules
from callstats.core.phones import InvalidPhone, normalize
from callstats.db import migrate
from callstats.db.engine import Database
from callstats.demo import platforms
from callstats.demo.dialer import CarrierRoute, DemoCampaign, dialer_task
from callstats.logs import log_config
from callstats.sealing import secret_box
from callstats.serving import ListenFailed, listen

# Real US area codes, so that every generated number is one libphonenumber accepts as valid.
AREA_CODES = (212, 312, 415, 617, 206, 303, 512, 404, 305, 702)
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
# The mark of a database the demo created, in the SQLite header's application_id (offset 68):
# "CSdm". The demo replaces such a file; it refuses any other file unless --force is given.
DEMO_APPLICATION_ID = 0x4353646D
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_HEADER_BYTES = 100
REFUSAL_HINT = "choose another --database path, or add --force to replace it"
CREATE_HINT = "check that the directory exists and that this user may write there"
WEBHOOK_ROUTE = "/webhooks/{provider}/{connectionId}"  # the route template access lines name


class DemoRefused(Exception):
    """The demo will not start: a one-line reason (a file it must not replace or cannot create, a file
    a running demo uses, a taken port, a --via naming no platform)."""


def run_demo(
    contacts: int,
    host: str,
    port: int,
    database: str,
    speed: float,
    force: bool = False,
    via: str | None = None,
) -> None:
    """Set up the demo campaign, print how to query it, and serve until Ctrl-C or SIGTERM.

    With `via` (twilio, retell or vapi: demo.platforms.PROVIDERS) the demo also creates a carrier
    connection of that platform and its dialer reports every call as the platform's signed webhooks,
    posted to this server; without it the dialer records its events in process.

    Raises DemoRefused, before anything is changed, when `database` is a file the demo did not create
    or one a running demo holds (unless `force`), when it cannot be created (no such directory, no
    permission), when host:port cannot be listened on, or when `via` names no platform.
    """
    provider = checked_provider(via)
    path = Path(database)
    if not path.parent.is_dir():
        raise DemoRefused(f"cannot create {path}: no directory {path.parent.absolute()}; {CREATE_HINT}")
    if not force:
        check_replaceable(path)
    with held_by_this_demo(path, force):
        # Listen first: a busy port must fail before the database file (maybe another demo's) is deleted.
        try:
            listener = listen(host, port)
        except ListenFailed as exc:
            raise DemoRefused(str(exc)) from None
        try:
            url = fresh_database(path)
            settings = Settings(database_url=url, redis_url=None)
            db = Database(url, settings.db_pool_size, settings.counter_slots)
            campaign, api_key = create_demo_campaign(db, contacts, EventRules.from_settings(settings))
            loopback = base_url(host, listener.getsockname()[1])
            route = connect_carrier(db, settings, campaign, provider, loopback) if provider else None
        except (OSError, sqlite3.Error, SQLAlchemyError) as exc:
            listener.close()
            raise DemoRefused(f"cannot create {path}: {_reason(exc)}; {CREATE_HINT}") from None
        _serve(listener, host, settings, db, campaign, api_key, contacts, speed, route)
    _say("Demo stopped.")


def _serve(
    listener: socket.socket,
    host: str,
    settings: Settings,
    db: Database,
    campaign: DemoCampaign,
    api_key: str,
    contacts: int,
    speed: float,
    route: CarrierRoute | None,
) -> None:
    url = base_url(host, listener.getsockname()[1])
    # Listening before the app starts: the banner is printed by a task of the app's lifespan, which
    # can run before uvicorn listens on the socket (it does so after the lifespan's startup), and a
    # request sent on reading the banner then waits in the backlog instead of being refused.
    listener.listen(2048)  # uvicorn's default backlog

    async def announce(_db: Database) -> None:
        # Printed once the server runs, its stop signals handled: a stop that follows the banner is
        # never lost in the moment before uvicorn installs its handlers (nor absorbed while it starts).
        _say(f"Dashboard: {url}/dashboard")
        for line in banner(url, api_key, campaign.campaign_id, contacts, speed, route):
            _say(line)

    task = dialer_task(campaign, speed, announce=_say, via=route)
    app = create_app(settings, db=db, background=[announce, task])
    app.exit_deadline_seconds = settings.drain_seconds  # a stop always ends it
    logs = demo_log_config(quiet_webhooks=route is not None)
    config = uvicorn.Config(
        app,
        log_config=logs,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
        proxy_headers=False,  # as `serve`: forwarded headers only from CALLSTATS_TRUSTED_PROXIES
    )
    with _signals_end_quietly():
        uvicorn.Server(config).run(sockets=[listener])


class QuietWebhooks(logging.Filter):
    """Keeps every access line but those of webhooks answered 2xx: with --via the dialer posts many
    a second, which would bury the lines of the requests a person makes; a refused one still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for a 2xx webhook's access line, True for anything else."""
        status = getattr(record, "status", None)
        answered = isinstance(status, int) and 200 <= status < 300
        return not (answered and getattr(record, "route", None) == WEBHOOK_ROUTE)


def demo_log_config(quiet_webhooks: bool) -> dict[str, Any]:
    """The demo's logging: warnings, and callstats' access lines as plain text; with
    `quiet_webhooks` (--via), without those of the webhooks answered 2xx (QuietWebhooks)."""
    logs = log_config("warning", human=True)
    if quiet_webhooks:
        logs["filters"]["quiet_webhooks"] = {"()": QuietWebhooks}
        logs["handlers"]["access"]["filters"].append("quiet_webhooks")
    return logs


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    detail = (getattr(inner, "strerror", None) or str(inner)).strip()
    return detail.splitlines()[0].rstrip(".") if detail else type(inner).__name__


@contextmanager
def held_by_this_demo(path: Path, force: bool) -> Iterator[None]:
    """Hold an exclusive lock on PATH.lock (flock) while the demo runs, so that a second demo on the
    same --database is refused instead of replacing the file under the first; the lock file is
    removed at the end. With `force`, a lock another demo holds does not stop it."""
    lock_path = path.with_name(path.name + ".lock")
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DemoRefused(f"cannot create {lock_path}: {_reason(exc)}; {CREATE_HINT}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if force:
                yield
                return
            raise DemoRefused(
                f"{path} is in use by a running demo (it holds {lock_path.name}): stop that demo, "
                "choose another --database path, or add --force to replace it anyway"
            ) from None
        try:  # the file locked is still the one at lock_path (an ending demo removes its lock file)
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(fd)


def check_replaceable(path: Path) -> None:
    """Nothing if the demo may (re)create `path`: it does not exist, or it is a demo database.

    A demo database is an SQLite file whose header's application_id is DEMO_APPLICATION_ID (set by
    `fresh_database`). Anything else (a directory, a text file, any other SQLite database, a
    callstats database in use) raises DemoRefused. An empty file counts as new: it holds nothing
    to lose.
    """
    if not path.exists() and not path.is_symlink():
        return
    if path.is_file() and path.stat().st_size == 0:
        return
    if not path.is_file():
        raise DemoRefused(f"{path} exists and is not a file: choose another --database path")
    with path.open("rb") as file:
        header = file.read(SQLITE_HEADER_BYTES)
    if not is_demo_database(header):
        what = "an SQLite database" if header.startswith(SQLITE_MAGIC) else "a file"
        raise DemoRefused(f"{path} is {what} the demo did not create: {REFUSAL_HINT}")


def is_demo_database(header: bytes) -> bool:
    """Whether the first 100 bytes of a file are those of a database the demo created."""
    return (
        len(header) >= SQLITE_HEADER_BYTES
        and header.startswith(SQLITE_MAGIC)
        and int.from_bytes(header[68:72], "big") == DEMO_APPLICATION_ID
    )


def fresh_database(path: Path) -> str:
    """Delete the SQLite file (and its WAL and shared-memory files), migrate a new one marked as the
    demo's (PRAGMA application_id = DEMO_APPLICATION_ID); its URL."""
    for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        leftover.unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
        conn.commit()
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
        db,
        key.account_id,
        CreateCampaign(name=f"Demo campaign ({contacts} contacts)"),
        region,
        events.clock(),
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


def checked_provider(via: str | None) -> str | None:
    """The platform `--via` names (any case), None for none; DemoRefused for a name it does not know."""
    if via is None:
        return None
    if via.lower() not in platforms.PROVIDERS:
        raise DemoRefused(
            f"--via {via!r} is not a platform the demo knows: use {', '.join(platforms.PROVIDERS)}"
        )
    return via.lower()


def connect_carrier(
    db: Database, settings: Settings, campaign: DemoCampaign, provider: str, loopback: str
) -> CarrierRoute:
    """A carrier connection of `provider` for the campaign's account, with a random secret sealed as
    any connection's (the SQLite key file beside the database, or CALLSTATS_SECRET_KEY), and the
    route the dialer reports its calls along.

    The platform signs the connection's webhook_url with `?campaign_id=`, on CALLSTATS_PUBLIC_URL
    when set (what a real platform would call), else on `loopback`, the demo's own base URL; the
    dialer posts to the same path and query on `loopback`. Raises OSError when the key file cannot
    be made.
    """
    secret = secrets.token_hex(16)  # as long as a Twilio auth token
    body = CreateCarrierConnection.model_validate(
        {"provider": provider, "secret": secret, "name": "callstats demo dialer"}
    )
    box = secret_box(settings)
    connection = create_connection(db, box, campaign.account_id, body, settings.public_url or loopback)
    query = "?" + urlencode({"campaign_id": campaign.campaign_id})
    path = urlsplit(connection.webhook_url).path
    return CarrierRoute(
        provider, connection.connection_id, secret, connection.webhook_url + query, loopback + path + query
    )


def base_url(host: str, port: int) -> str:
    """The URL a local client reaches the server at (a wildcard host becomes loopback)."""
    reachable = WILDCARD_HOSTS.get(host, host)
    return f"http://[{reachable}]:{port}" if ":" in reachable else f"http://{reachable}:{port}"


def banner(
    url: str, api_key: str, campaign_id: str, contacts: int, speed: float, via: CarrierRoute | None = None
) -> list[str]:
    """What the demo prints before serving; each line starts with a fixed label. With `via`, the
    platform the calls come through and the webhook URL they are posted to (as the platform signs it)."""
    lines = [
        f"callstats demo: {contacts} contacts, a simulated dialer at {speed:g}x speed.",
        f"Base URL: {url}",
        f"API key:  {api_key}",
        f"Campaign: {campaign_id}",
    ]
    if via is not None:
        lines.append(f"Carrier:  {platforms.LABELS[via.provider]}, connection {via.connection_id}")
        lines.append(f"Webhook:  {via.signed_url}")
    lines.append(f"Try:      curl -s {url}/getCampaignStats/{campaign_id} -H 'x-api-key: {api_key}'")
    lines.append("Ctrl-C stops it.")
    return lines


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
