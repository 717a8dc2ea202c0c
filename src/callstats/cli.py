"""The `callstats` command: serve, migrate, demo, import, keys, reconcile, watch.

An error a person can act on (a bad setting, an unreachable or malformed database URL, a taken
port, a file the demo must not replace, a watch URL that cannot work) ends the command with one
line on stderr and exit code 2; `callstats --debug COMMAND` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from callstats import __version__
from callstats.accounts import service as accounts
from callstats.config import DEFAULT_DATABASE_URL, Settings, is_sqlite, sqlalchemy_url
from callstats.db import migrate as migrations
from callstats.db.engine import Database

# Plain help (click's layout): typer's rich help prints a type such as <bool> beside every flag.
app = typer.Typer(
    help="callstats: exact, instant statistics for outbound call campaigns.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,  # --debug shows Python's own traceback, never local variables
)
keys_app = typer.Typer(
    help="Manage API keys (only their hashes are stored).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(keys_app, name="keys")
EXIT_USAGE = 2  # as click's usage errors: a setting, a URL, a file or an option to fix


@dataclass
class _Run:
    """This invocation's global options, and the database URL it uses (for error messages)."""

    debug: bool = False
    database_url: str | None = None


_run = _Run()


def _show_version(show: bool) -> None:
    if show:
        typer.echo(f"callstats {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, show the full traceback instead of one line.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """callstats: exact, instant statistics for outbound call campaigns."""
    _run.debug = debug


def _settings() -> Settings:
    """The settings from CALLSTATS_* variables; a bad one ends the command with one line per problem."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CALLSTATS_{str(error['loc'][0]).upper()}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        _fail(f"bad setting: {problems}", code=EXIT_USAGE)
        raise AssertionError("unreachable") from None
    _run.database_url = settings.database_url
    problem = malformed_database_url(settings.database_url)
    if problem:
        _fail(problem, code=EXIT_USAGE)
    return settings


def malformed_database_url(url: str) -> str | None:
    """One line saying why CALLSTATS_DATABASE_URL cannot name a callstats database, or None."""
    try:
        backend = make_url(sqlalchemy_url(url)).get_backend_name()
    except (ArgumentError, ValueError) as exc:
        reason = "not a URL" if isinstance(exc, ArgumentError) else str(exc)
    else:
        if backend in ("sqlite", "postgresql"):
            return None
        reason = f"callstats does not run on {backend!r}"
    return (
        f"CALLSTATS_DATABASE_URL={redacted(url)!r} is malformed ({reason}): "
        "give sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    )


def _database(settings: Settings) -> Database:
    db = Database(settings.database_url, pool_size=2, counter_slots=settings.counter_slots)
    status = migrations.status(db.engine, settings.database_url)
    if not status.up_to_date:
        db.dispose()
        _fail(_behind_message(status))
    return db


def _behind_message(status: migrations.SchemaStatus) -> str:
    if status.ahead:
        return (
            f"The database schema is at revision {status.current}, newer than this callstats knows "
            f"(its newest is {status.head}): run a callstats at least as new as the one that migrated it."
        )
    return (
        f"The database schema is at revision {status.current or 'none (empty database)'}, "
        f"this callstats needs {status.head}: run `callstats migrate` first."
    )


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def redacted(url: str) -> str:
    """The URL with its password shown as *** (also when it does not parse as a URL)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def database_problem(exc: ArgumentError | DBAPIError, url: str) -> str:
    """One line: what is wrong with the database CALLSTATS_DATABASE_URL names, and what to check.

    Never the password: the URL is redacted, and the password is cut out of the driver's reason.
    """
    shown = redacted(url)
    if isinstance(exc, ArgumentError):
        return (
            f"CALLSTATS_DATABASE_URL={shown!r} is not a database URL callstats can use: "
            "give sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    detail = str(exc.orig if exc.orig is not None else exc).strip()
    reason = detail.splitlines()[0] if detail else type(exc.orig or exc).__name__
    password = _password(url)
    if password:
        reason = reason.replace(password, "***")
    if is_sqlite(url):
        check = "check that the file's directory exists and that this user may write there"
    else:
        check = "check that the server runs at that host and port, and the user, password and database name"
    return f"cannot use the database {shown} (CALLSTATS_DATABASE_URL): {reason}; {check}"


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except Exception:
        return None


@app.command()
def migrate() -> None:
    """Create or upgrade the schema of the database CALLSTATS_DATABASE_URL names."""
    settings = _settings()
    try:
        done = migrations.upgrade(settings.database_url)
    except migrations.NewerSchema as newer:
        _fail(_behind_message(newer.status))
        return
    typer.echo(done.describe())


@app.command()
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(metavar="WORKERS", min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the API (SQLite by default, PostgreSQL via CALLSTATS_DATABASE_URL).

    The database, Redis (when CALLSTATS_REDIS_URL is set) and host:port are checked first: a
    problem is one line and exit code 2. SIGTERM or SIGINT stops it within CALLSTATS_DRAIN_SECONDS.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from callstats.logs import log_config
    from callstats.serving import ListenFailed, graceful_seconds, listen

    settings = _settings()
    _database(settings).dispose()
    if settings.redis_url:
        _check_redis(settings.redis_url)
    try:
        listener = listen(host, port)
    except ListenFailed as exc:
        _fail(f"callstats serve: {exc}", code=EXIT_USAGE)
        return
    config = uvicorn.Config(
        "callstats.app:app_from_env",
        factory=True,
        workers=workers,
        log_config=log_config(settings.log_level),  # JSON lines, no tracebacks (docs/deployment.md)
        log_level=settings.log_level,
        access_log=False,  # callstats writes its own access line (CALLSTATS_ACCESS_LOG)
        server_header=False,
        timeout_graceful_shutdown=graceful_seconds(settings.drain_seconds),
    )
    _log_listening(*listener.getsockname()[:2])
    if workers > 1:  # uvicorn's process manager, on the socket bound above
        Multiprocess(config, sockets=[listener]).run()
        return
    server = uvicorn.Server(config)
    server.run(sockets=[listener])
    if not server.started:
        raise typer.Exit(3)  # uvicorn's code for an app whose start-up failed (logged above)


def _log_listening(host: str, port: int) -> None:
    """Where the server listens (uvicorn logs it only for a socket it binds itself)."""
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("callstats").info("listening on http://%s:%d", shown, port)


def _check_redis(redis_url: str) -> None:
    """One line and exit code 2 unless Redis at CALLSTATS_REDIS_URL answers a PING within 2 s."""
    import redis

    shown = redacted(redis_url)
    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    except ValueError as exc:
        _fail(f"CALLSTATS_REDIS_URL={shown!r} is not a Redis URL: {exc}", code=EXIT_USAGE)
        return
    try:
        client.ping()
    except redis.RedisError as exc:
        detail = str(exc).strip()
        reason = detail.splitlines()[0] if detail else type(exc).__name__
        _fail(
            f"cannot reach Redis at {shown} (CALLSTATS_REDIS_URL): {reason}; "
            "check that it runs at that host and port, and its password",
            code=EXIT_USAGE,
        )
    finally:
        client.close()


@app.command()
def demo(
    contacts: Annotated[
        int, typer.Option(metavar="CONTACTS", min=1, help="Contacts in the demo campaign.")
    ] = 2000,
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port.")] = 8000,
    database: Annotated[
        str,
        typer.Option(
            metavar="PATH",
            help="SQLite file, created afresh: a new path, or a database an earlier demo made.",
        ),
    ] = "callstats-demo.db",
    speed: Annotated[
        float, typer.Option(metavar="SPEED", min=0.1, help="Time acceleration of the simulated dialer.")
    ] = 60.0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --database file even if the demo did not create it.")
    ] = False,
) -> None:
    """Fresh SQLite database, a key, a campaign and a simulated dialer, served live; Ctrl-C stops it.

    The demo replaces its --database file only if it created it (it marks its databases); any
    other file is refused with exit code 2, unless --force is given.
    """
    from callstats.demo.runner import DemoRefused, run_demo

    try:
        run_demo(contacts=contacts, host=host, port=port, database=database, speed=speed, force=force)
    except DemoRefused as refused:
        _fail(f"callstats demo: {refused}", code=EXIT_USAGE)


@app.command("import")
def import_contacts(
    campaign_id: Annotated[
        str, typer.Argument(metavar="CAMPAIGN_ID", help="The campaign to add the contacts to.")
    ],
    csv_file: Annotated[
        Path, typer.Argument(metavar="CSV_FILE", exists=True, dir_okay=False, help="CSV with a phone column.")
    ],
    key: Annotated[str, typer.Option(metavar="KEY", envvar="CALLSTATS_API_KEY", help="A write key.")],
    url: Annotated[
        str, typer.Option(metavar="URL", envvar="CALLSTATS_URL", help="The server.")
    ] = "http://127.0.0.1:8000",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")] = False,
    encoding: Annotated[
        str | None, typer.Option(metavar="ENCODING", help="The file's charset if not UTF-8 (BOM wins).")
    ] = None,
    phone_column: Annotated[
        str | None, typer.Option(metavar="PHONE_COLUMN", help="The column holding the phones.")
    ] = None,
    region: Annotated[
        str | None, typer.Option(metavar="REGION", help="Region of numbers without +country.")
    ] = None,
) -> None:
    """Add a CSV file's contacts to a campaign through the HTTP API, 10,000 rows per request."""
    from callstats.importer import ImportOptions, run_command

    options = ImportOptions(encoding, phone_column, region)
    raise typer.Exit(run_command(campaign_id, csv_file, url, key, as_json, options))


@app.command()
def watch(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID", help="The campaign to watch.")],
    key: Annotated[str, typer.Option(metavar="KEY", envvar="CALLSTATS_API_KEY", help="A read or write key.")],
    url: Annotated[
        str, typer.Option(metavar="URL", envvar="CALLSTATS_URL", help="The server.")
    ] = "http://127.0.0.1:8000",
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="Give up (exit code 1) after this many seconds without a connection. [default: never]",
        ),
    ] = None,
) -> None:
    """Show a campaign's live numbers in the terminal, redrawn in place as they change; Ctrl-C stops it.

    A URL that cannot work (no http:// or https://, no host) is refused at once with exit code 2;
    a server that does not answer is retried with growing waits, until --timeout if given.
    """
    from callstats.watch import BadUrl, check_url, run_watch

    try:
        base_url = check_url(url)
    except BadUrl as bad:
        _fail(f"callstats watch: {bad}", code=EXIT_USAGE)
        return
    raise typer.Exit(run_watch(campaign_id, base_url, key, give_up_after=timeout))


def _account_name(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("an account needs a name (not empty, not only spaces)")
    return value


@keys_app.command("create")
def keys_create(
    account: Annotated[
        str, typer.Option(metavar="ACCOUNT", help="Account name (created if new).", callback=_account_name)
    ],
    scope: Annotated[
        str, typer.Option(metavar="SCOPE", help="read or write (write can do everything read can).")
    ] = "write",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")] = False,
) -> None:
    """Create a key; it is printed once and never stored."""
    if scope not in ("read", "write"):
        _fail("--scope must be read or write", code=EXIT_USAGE)
    db = _database(_settings())
    created = accounts.create_key(db, account, scope)
    db.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "key": created.plaintext,
                    "key_id": created.key_id,
                    "account_id": created.account_id,
                    "scope": scope,
                }
            )
        )
        return
    typer.echo(f"API key ({scope}) for account {account!r}, shown only this once:\n\n  {created.plaintext}\n")
    typer.echo(f"key id: {created.key_id}   account id: {created.account_id}")


@keys_app.command("list")
def keys_list() -> None:
    """List keys (ids, accounts, scopes; never secrets)."""
    db = _database(_settings())
    listing = accounts.list_keys(db)
    db.dispose()
    typer.echo(f"{'KEY ID':<14}{'ACCOUNT':<24}{'SCOPE':<7}{'CREATED':<22}STATUS")
    for key in listing:
        status = "revoked " + _when(key.revoked_at) if key.revoked_at else "active"
        typer.echo(
            f"{key.key_id:<14}{key.account_name[:22]:<24}{key.scope:<7}{_when(key.created_at):<22}{status}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key id `keys list` shows.")],
) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    db = _database(_settings())
    revoked = accounts.revoke_key(db, key_id)
    db.dispose()
    if not revoked:
        _fail(f"No active key with id {key_id!r}.")
    typer.echo(f"Key {key_id} revoked.")


@app.command()
def reconcile(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN_ID", help="The campaign to check.")],
) -> None:
    """Recompute a campaign's numbers from raw rows and report any difference from its counters."""
    from callstats.stats.reconcile import live_differences

    db = _database(_settings())
    found = live_differences(db, campaign_id)
    db.dispose()
    if found is None:
        _fail(f"Campaign {campaign_id} not found.")
        return
    if not found:
        typer.echo(f"Campaign {campaign_id}: counters match the raw rows exactly.")
        return
    typer.echo(f"Campaign {campaign_id}: {len(found)} difference(s) between counters and raw rows:")
    for diff in found:
        typer.echo(f"  {diff.field}: counters={_short(diff.counters)} recomputed={_short(diff.recomputed)}")
    raise typer.Exit(1)


def _short(value: object, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def main() -> None:
    """Entry point of the `callstats` script: a database error is one line and exit code 2."""
    try:
        app(prog_name="callstats")
    except (ArgumentError, DBAPIError) as exc:
        if _run.debug:
            raise
        url = DEFAULT_DATABASE_URL if _run.database_url is None else _run.database_url
        typer.secho(database_problem(exc, url), err=True, fg="red")
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
