"""The `callstats` command: serve, migrate, demo, import, export, keys, reconcile, watch.

An error a person can act on (a bad setting, an unreachable or malformed database URL, a taken
port, a file the demo must not replace, a server URL that cannot work) ends the command with one
line on stderr, `callstats COMMAND: what is wrong; what to check`, and exit code 2; click's usage
errors (a bad option or argument) exit with 2 as well. Any other failure is one line and exit
code 1. `callstats --debug COMMAND` shows the traceback instead. Every message is printed by
`_error`, unwrapped (one message, one line) whatever the terminal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from typer._click import Context, HelpFormatter  # typer 0.29 vendors click: its commands use these
from typer.core import TyperArgument, TyperCommand

from callstats import __version__
from callstats.accounts import service as accounts
from callstats.config import DEFAULT_DATABASE_URL, Settings, is_sqlite, redacted
from callstats.db import migrate as migrations
from callstats.db.engine import Database
from callstats.ids import canonical_uuid

EXIT_USAGE = 2  # as click's usage errors: a setting, a URL, a file, an id or an option to fix
EXIT_FAILED = 1  # anything else that stopped the command (reconcile: the counters differ)
PORT_RANGE = {"min": 0, "max": 65535}  # 0: any free port
PORT_HELP = "TCP port (0: any free port)."
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's variable (Settings.prometheus_multiproc_dir)


@dataclass
class _Run:
    """This invocation's global options, its command (`callstats keys list`) and the database URL it
    uses (for error messages)."""

    debug: bool = False
    command: str = "callstats"
    database_url: str | None = None


_run = _Run()


class PlainHelpCommand(TyperCommand):
    """A typer command with click's plain help layout, and the one that records which command runs.

    An argument is shown by its name alone, `CAMPAIGN_ID`, where typer 0.29 prints `{CAMPAIGN_ID}`
    in the usage line and `CAMPAIGN_ID <str>` in the Arguments section. (An option shows its
    metavar: every option that takes a value declares one.)
    """

    def invoke(self, ctx: Context) -> Any:
        """Run the command, remembering its path for the one-line errors."""
        _run.command = ctx.command_path
        return super().invoke(ctx)

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        """`[OPTIONS] CAMPAIGN_ID CSV_FILE`: required arguments bare, optional ones in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.display_name_raw
                name = name if param.required else f"[{name}]"
                pieces.append(name if param.nargs == 1 else f"{name}...")
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The Arguments and Options sections; an argument's name without a type label."""
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                arguments.append((param.display_name_raw, record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


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
    """The settings from CALLSTATS_* variables; a bad one ends the command with one line (exit code 2)
    naming each problem (a malformed CALLSTATS_DATABASE_URL is one: config.database_url_problem)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(_setting_problem(error) for error in exc.errors())
        _fail(problems, code=EXIT_USAGE)
        raise AssertionError("unreachable") from None
    _run.database_url = settings.database_url
    return settings


def _setting_problem(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("CALLSTATS_"):  # the message names the setting itself
        return message
    return f"bad setting CALLSTATS_{str(error['loc'][0]).upper()}: {message}"


def _database(settings: Settings) -> Database:
    """The database, its schema up to date; else one line: no such SQLite file (exit code 2, and the
    file is not created), or a schema behind or ahead of the code (exit code 1)."""
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        _fail(f"no database at {missing}: run `callstats migrate` first to create it", code=EXIT_USAGE)
    db = Database(settings.database_url, pool_size=2, counter_slots=settings.counter_slots)
    status = migrations.status(db.engine, settings.database_url)
    if not status.up_to_date:
        db.dispose()
        _fail(_behind_message(status))
    return db


def _missing_sqlite_file(url: str) -> Path | None:
    """The absolute path of the file an SQLite URL names when its directory exists but the file does
    not (opening it would create an empty database file), else None. A missing directory is left
    to the open, whose error says to check the directory (database_problem)."""
    if not is_sqlite(url):
        return None
    path = Path(make_url(url).database or "")
    return path.absolute() if path.parent.is_dir() and not path.exists() else None


def _behind_message(status: migrations.SchemaStatus) -> str:
    if status.ahead:
        return (
            f"the database schema is at revision {status.current}, newer than this callstats knows "
            f"(its newest is {status.head}): run a callstats at least as new as the one that migrated it"
        )
    return (
        f"the database schema is at revision {status.current or 'none (empty database)'}, "
        f"this callstats needs {status.head}: run `callstats migrate` first"
    )


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    """End the command with one line on stderr (see _error) and this exit code."""
    _error(message)
    raise typer.Exit(code)


def _error(message: str) -> None:
    """Print `callstats COMMAND: message` on stderr as one line, whatever the terminal's width.

    The one place errors are printed: click.echo never wraps (rich would wrap at 80 columns when
    stderr is not a terminal), a multi-line message is joined, and the colour shows only on a terminal.
    """
    text = " ".join(line.strip() for line in message.strip().splitlines())
    typer.secho(f"{_run.command}: {text}", err=True, fg=typer.colors.RED)


def reason(exc: BaseException) -> str:
    """An exception's text as a clause inside one line: its first line, without a closing period
    (the message goes on with "; check ..."), or its type's name when it has no text."""
    detail = str(exc).strip()
    first = detail.splitlines()[0].strip() if detail else ""
    return first.rstrip(".").rstrip() or type(exc).__name__


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
    why = reason(exc.orig if exc.orig is not None else exc)
    password = _password(url)
    if password:
        why = why.replace(password, "***")
    if is_sqlite(url):
        check = "check that the file's directory exists and that this user may write there"
    else:
        check = "check that the server runs at that host and port, and the user, password and database name"
    return f"cannot use the database {shown} (CALLSTATS_DATABASE_URL): {why}; {check}"


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except Exception:
        return None


@app.command(cls=PlainHelpCommand)
def migrate() -> None:
    """Create or upgrade the schema of the database CALLSTATS_DATABASE_URL names."""
    settings = _settings()
    try:
        done = migrations.upgrade(settings.database_url)
    except migrations.NewerSchema as newer:
        _fail(_behind_message(newer.status))
        return
    typer.echo(done.describe())


@app.command(cls=PlainHelpCommand)
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", **PORT_RANGE, help=PORT_HELP)] = 8000,
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
        _fail(str(exc), code=EXIT_USAGE)
        return
    config = uvicorn.Config(
        "callstats.app:app_from_env",
        factory=True,
        workers=workers,
        log_config=log_config(settings.log_level),  # JSON lines, no tracebacks (docs/deployment.md)
        log_level=settings.log_level,
        access_log=False,  # callstats writes its own access line (CALLSTATS_ACCESS_LOG)
        server_header=False,
        # Forwarded headers are believed only from CALLSTATS_TRUSTED_PROXIES (carriers/public_url.py),
        # not from uvicorn's default 127.0.0.1: they decide the webhook URLs a signature covers.
        proxy_headers=False,
        timeout_graceful_shutdown=graceful_seconds(settings.drain_seconds),
    )
    _log_listening(*listener.getsockname()[:2])
    if workers > 1:  # uvicorn's process manager, on the socket bound above
        with metrics_directory():  # every worker's metric values, summed by /metrics
            Multiprocess(config, sockets=[listener]).run()
        return
    os.environ.pop(MULTIPROC_ENV, None)  # one process: its metrics in memory, nothing inherited summed
    server = uvicorn.Server(config)
    server.run(sockets=[listener])
    if not server.started:
        raise typer.Exit(3)  # uvicorn's code for an app whose start-up failed (logged above)


@contextmanager
def metrics_directory() -> Iterator[str]:
    """A private directory for this run's metric files (prometheus-client's multiprocess mode), named
    in the workers' environment by PROMETHEUS_MULTIPROC_DIR before they start (the library reads it
    at import), and removed with everything in it when the server stops: made afresh for each run,
    so no earlier run's counts are ever summed. Under TMPDIR (a tmpfs keeps the writes off disk)."""
    with tempfile.TemporaryDirectory(prefix="callstats-metrics-") as directory:
        os.environ[MULTIPROC_ENV] = directory
        try:
            yield directory
        finally:
            os.environ.pop(MULTIPROC_ENV, None)


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
        _fail(f"CALLSTATS_REDIS_URL={shown!r} is not a Redis URL: {reason(exc)}", code=EXIT_USAGE)
        return
    try:
        client.ping()
    except redis.RedisError as exc:
        _fail(
            f"cannot reach Redis at {shown} (CALLSTATS_REDIS_URL): {reason(exc)}; "
            "check that it runs at that host and port, and its password",
            code=EXIT_USAGE,
        )
    finally:
        client.close()


@app.command(cls=PlainHelpCommand)
def demo(
    contacts: Annotated[
        int, typer.Option(metavar="CONTACTS", min=1, help="Contacts in the demo campaign.")
    ] = 2000,
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", **PORT_RANGE, help=PORT_HELP)] = 8000,
    database: Annotated[
        str,
        typer.Option(
            metavar="PATH",
            help="SQLite file, created afresh: a new path, an empty file, or a database an earlier "
            "demo made that no running demo uses.",
        ),
    ] = "callstats-demo.db",
    speed: Annotated[
        float, typer.Option(metavar="SPEED", min=0.1, help="Time acceleration of the simulated dialer.")
    ] = 60.0,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace the --database file even if the demo did not create it or a demo runs on it.",
        ),
    ] = False,
    via: Annotated[
        str | None,
        typer.Option(
            metavar="PLATFORM",
            help="twilio, retell or vapi: the dialer reports its calls as that platform's signed "
            "webhooks, through a carrier connection, to this server.",
        ),
    ] = None,
) -> None:
    """Fresh SQLite database, a key, a campaign and a simulated dialer, served live; Ctrl-C stops it.

    The demo replaces its --database file only if it created it (it marks its databases) and no
    running demo holds it (PATH.lock); an empty file counts as new. Any other file, a directory
    that does not exist, a taken port or a --via naming no platform is refused with one line and
    exit code 2; --force replaces the file anyway. With --via the calls arrive as Twilio status
    callbacks, Retell webhooks or Vapi server messages, signed with a carrier connection's secret
    (docs/carriers.md, Try it with the demo).
    """
    from callstats.demo.runner import DemoRefused, run_demo

    try:
        run_demo(
            contacts=contacts, host=host, port=port, database=database, speed=speed, force=force, via=via
        )
    except DemoRefused as refused:
        _fail(str(refused), code=EXIT_USAGE)


def _server_url(url: str) -> str:
    """The --url of `import` and `watch` (callstats.urls.check_url); one line and exit code 2 if it
    cannot work."""
    from callstats.urls import BadUrl, check_url

    try:
        return check_url(url)
    except BadUrl as bad:
        _fail(str(bad), code=EXIT_USAGE)
        raise AssertionError("unreachable") from None


def _campaign_id(value: str) -> str:
    """A campaign id in its canonical form; a click usage error (exit code 2) if it is not a UUID."""
    try:
        return canonical_uuid(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a UUID") from None


class Scope(StrEnum):
    """What a key may do: read, or write (which can do everything read can)."""

    READ = "read"
    WRITE = "write"


@app.command("import", cls=PlainHelpCommand)
def import_contacts(
    campaign_id: Annotated[
        str,
        typer.Argument(
            metavar="CAMPAIGN_ID", callback=_campaign_id, help="The campaign (a UUID) to add the contacts to."
        ),
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
    """Add a CSV file's contacts to a campaign through the HTTP API, 10,000 rows per request.

    A URL that cannot work (no http:// or https://, no host) is refused at once with exit code 2;
    a request that fails stops the import with one line and exit code 1.
    """
    from callstats.importer import ImportFailed, ImportOptions, run_command

    base_url = _server_url(url)
    options = ImportOptions(encoding, phone_column, region)
    try:
        run_command(campaign_id, csv_file, base_url, key, as_json, options)
    except ImportFailed as failure:
        _fail(failure.describe())


class ExportKind(StrEnum):
    """What `callstats export` writes: the campaign's contacts or its calls."""

    CONTACTS = "contacts"
    CALLS = "calls"


class FileFormat(StrEnum):
    """The export file's format."""

    CSV = "csv"
    NDJSON = "ndjson"


@app.command("export", cls=PlainHelpCommand)
def export(
    campaign_id: Annotated[
        str,
        typer.Argument(metavar="CAMPAIGN_ID", callback=_campaign_id, help="The campaign (a UUID) to export."),
    ],
    kind: Annotated[ExportKind, typer.Argument(metavar="contacts|calls", help="What to export.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", dir_okay=False, help="The file to write.")
    ],
    key: Annotated[str, typer.Option(metavar="KEY", envvar="CALLSTATS_API_KEY", help="A read or write key.")],
    url: Annotated[
        str, typer.Option(metavar="URL", envvar="CALLSTATS_URL", help="The server.")
    ] = "http://127.0.0.1:8000",
    file_format: Annotated[
        FileFormat, typer.Option("--format", metavar="csv|ndjson", help="CSV or NDJSON.")
    ] = (FileFormat.CSV),
    state: Annotated[str | None, typer.Option(metavar="STATE", help="contacts: only this state.")] = None,
    last_outcome: Annotated[
        str | None, typer.Option(metavar="OUTCOME", help="contacts: only this last outcome.")
    ] = None,
    outcome: Annotated[str | None, typer.Option(metavar="OUTCOME", help="calls: only this outcome.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", metavar="TIME", help="calls: started at or after (ISO 8601).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", metavar="TIME", help="calls: started before (ISO 8601).")
    ] = None,
) -> None:
    """Write a campaign's contacts or calls to FILE through the HTTP API (exportContacts, exportCalls),
    with a progress bar whose total comes from the campaign's counters.

    A URL that cannot work, or a filter of the other kind (--state for calls), is refused at once with
    exit code 2; a request the server refuses or a stream that breaks off stops the export with one
    line and exit code 1, and FILE is left as it was.
    """
    from callstats.exporter import ExportFailed, ExportRequest, run_export

    base_url = _server_url(url)
    contacts = {"state": state, "last_outcome": last_outcome}
    calls = {"outcome": outcome, "from": start, "to": end}
    filters, foreign = (contacts, calls) if kind is ExportKind.CONTACTS else (calls, contacts)
    if any(value is not None for value in foreign.values()):
        _fail(f"that filter does not apply to {kind.value}: see callstats export --help", code=EXIT_USAGE)
    request = ExportRequest(campaign_id, kind.value, file_format.value, filters)
    try:
        run_export(request, output, base_url, key)
    except ExportFailed as failure:
        _fail(f"stopped: {failure}")


@app.command(cls=PlainHelpCommand)
def watch(
    campaign_id: Annotated[
        str,
        typer.Argument(metavar="CAMPAIGN_ID", callback=_campaign_id, help="The campaign (a UUID) to watch."),
    ],
    key: Annotated[str, typer.Option(metavar="KEY", envvar="CALLSTATS_API_KEY", help="A read or write key.")],
    url: Annotated[
        str, typer.Option(metavar="URL", envvar="CALLSTATS_URL", help="The server.")
    ] = "http://127.0.0.1:8000",
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="Give up (exit code 1) after this many seconds without a connection; without it, "
            "retry for ever.",
        ),
    ] = None,
) -> None:
    """Show a campaign's live numbers in the terminal, redrawn in place as they change; Ctrl-C stops it.

    A URL that cannot work (no http:// or https://, no host) is refused at once with exit code 2;
    a server that does not answer is retried with growing waits, until --timeout if given.
    """
    from callstats.watch import WatchFailed, WatchGaveUp, run_watch

    base_url = _server_url(url)
    try:
        run_watch(campaign_id, base_url, key, give_up_after=timeout)
    except (WatchFailed, WatchGaveUp) as ended:
        _fail(str(ended))


def _account_name(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("an account needs a name (not empty, not only spaces)")
    return value


@keys_app.command(cls=PlainHelpCommand, name="create")
def keys_create(
    account: Annotated[
        str, typer.Option(metavar="ACCOUNT", help="Account name (created if new).", callback=_account_name)
    ],
    scope: Annotated[
        Scope,
        typer.Option(
            metavar=f"[{'|'.join(Scope)}]", help="What the key may do (write can do everything read can)."
        ),
    ] = Scope.WRITE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")] = False,
) -> None:
    """Create a key; it is printed once and never stored."""
    db = _database(_settings())
    created = accounts.create_key(db, account, scope.value)
    db.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "key": created.plaintext,
                    "key_id": created.key_id,
                    "account_id": created.account_id,
                    "scope": scope.value,
                }
            )
        )
        return
    typer.echo(
        f"API key ({scope.value}) for account {account!r}, shown only this once:\n\n  {created.plaintext}\n"
    )
    typer.echo(f"key id: {created.key_id}   account id: {created.account_id}")


@keys_app.command(cls=PlainHelpCommand, name="list")
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


@keys_app.command(cls=PlainHelpCommand, name="revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key id `keys list` shows.")],
) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    db = _database(_settings())
    revoked = accounts.revoke_key(db, key_id)
    db.dispose()
    if not revoked:
        _fail(f"no active key with id {key_id!r}")
    typer.echo(f"Key {key_id} revoked.")


@app.command(cls=PlainHelpCommand)
def reconcile(
    campaign_id: Annotated[
        str,
        typer.Argument(metavar="CAMPAIGN_ID", callback=_campaign_id, help="The campaign (a UUID) to check."),
    ],
) -> None:
    """Recompute a campaign's numbers from raw rows and report any difference from its counters.

    Exit codes: 0 the counters match the raw rows; 1 they differ (each difference is listed);
    2 nothing was compared: CAMPAIGN_ID is not a UUID, no campaign has it, or a setting or the
    database is to fix.
    """
    from callstats.stats.reconcile import live_differences

    db = _database(_settings())
    found = live_differences(db, campaign_id)
    db.dispose()
    if found is None:
        _fail(f"no campaign {campaign_id} in this database", code=EXIT_USAGE)
        return
    if not found:
        typer.echo(f"Campaign {campaign_id}: counters match the raw rows exactly.")
        return
    typer.echo(f"Campaign {campaign_id}: {len(found)} difference(s) between counters and raw rows:")
    for diff in found:
        typer.echo(f"  {diff.field}: counters={_short(diff.counters)} recomputed={_short(diff.recomputed)}")
    raise typer.Exit(EXIT_FAILED)


def _short(value: object, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def main() -> None:
    """Entry point of the `callstats` script: a database error is one line and exit code 2, any other
    unexpected error one line and exit code 1 (`--debug` shows the traceback instead)."""
    try:
        app(prog_name="callstats")
    except (ArgumentError, DBAPIError) as exc:
        if _run.debug:
            raise
        url = DEFAULT_DATABASE_URL if _run.database_url is None else _run.database_url
        _error(database_problem(exc, url))
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        if _run.debug:
            raise
        _error(f"unexpected error: {type(exc).__name__}; run with --debug to see where")
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
