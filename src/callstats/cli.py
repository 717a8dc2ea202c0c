"""The `callstats` command: serve, migrate, demo, import, keys, reconcile."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from callstats.accounts import service as accounts
from callstats.config import Settings
from callstats.db import migrate as migrations
from callstats.db.engine import Database

app = typer.Typer(
    help="callstats: exact, instant statistics for outbound call campaigns.", no_args_is_help=True
)
keys_app = typer.Typer(help="Manage API keys (only their hashes are stored).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _settings() -> Settings:
    """The settings from CALLSTATS_* variables; a bad one ends the command with one line per problem."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CALLSTATS_{str(error['loc'][0]).upper()}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        _fail(f"bad setting: {problems}", code=2)
        raise AssertionError("unreachable") from None


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


@app.command()
def migrate() -> None:
    """Create or upgrade the schema of the database CALLSTATS_DATABASE_URL names."""
    settings = _settings()
    migrations.upgrade(settings.database_url)
    typer.echo("Database schema is up to date.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the API (SQLite by default, PostgreSQL via CALLSTATS_DATABASE_URL)."""
    import uvicorn

    from callstats.logs import log_config

    settings = _settings()
    _database(settings).dispose()
    uvicorn.run(
        "callstats.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(settings.log_level),  # JSON lines, no tracebacks (docs/deployment.md)
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
    )


@app.command()
def demo(
    contacts: Annotated[int, typer.Option(min=1, help="Contacts in the demo campaign.")] = 2000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    database: Annotated[str, typer.Option(help="SQLite file, created afresh.")] = "callstats-demo.db",
    speed: Annotated[float, typer.Option(min=0.1, help="Time acceleration of the simulated dialer.")] = 60.0,
) -> None:
    """Fresh SQLite database, a key, a campaign and a simulated dialer, served live; Ctrl-C stops it."""
    from callstats.demo.runner import run_demo

    run_demo(contacts=contacts, host=host, port=port, database=database, speed=speed)


@app.command("import")
def import_contacts(
    campaign_id: Annotated[str, typer.Argument(help="The campaign to add the contacts to.")],
    csv_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV with a phone column.")],
    key: Annotated[str, typer.Option(envvar="CALLSTATS_API_KEY", help="A write key.")],
    url: Annotated[str, typer.Option(envvar="CALLSTATS_URL", help="The server.")] = "http://127.0.0.1:8000",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")] = False,
    encoding: Annotated[str | None, typer.Option(help="The file's charset if not UTF-8 (BOM wins).")] = None,
    phone_column: Annotated[str | None, typer.Option(help="The column holding the phones.")] = None,
    region: Annotated[str | None, typer.Option(help="Region of numbers without +country.")] = None,
) -> None:
    """Add a CSV file's contacts to a campaign through the HTTP API, 10,000 rows per request."""
    from callstats.importer import ImportOptions, run_command

    options = ImportOptions(encoding, phone_column, region)
    raise typer.Exit(run_command(campaign_id, csv_file, url, key, as_json, options))


@app.command()
def watch(
    campaign_id: Annotated[str, typer.Argument(help="The campaign to watch.")],
    key: Annotated[str, typer.Option(envvar="CALLSTATS_API_KEY", help="A read or write key.")],
    url: Annotated[str, typer.Option(envvar="CALLSTATS_URL", help="The server.")] = "http://127.0.0.1:8000",
) -> None:
    """Show a campaign's live numbers in the terminal, redrawn in place as they change; Ctrl-C stops it."""
    from callstats.watch import run_watch

    raise typer.Exit(run_watch(campaign_id, url, key))


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="Account name (created if new).")],
    scope: Annotated[str, typer.Option(help="read or write (write can do everything read can).")] = "write",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")] = False,
) -> None:
    """Create a key; it is printed once and never stored."""
    if scope not in ("read", "write"):
        _fail("--scope must be read or write", code=2)
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
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id `keys list` shows.")]) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    db = _database(_settings())
    revoked = accounts.revoke_key(db, key_id)
    db.dispose()
    if not revoked:
        _fail(f"No active key with id {key_id!r}.")
    typer.echo(f"Key {key_id} revoked.")


@app.command()
def reconcile(campaign_id: Annotated[str, typer.Argument(help="The campaign to check.")]) -> None:
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
    """Entry point of the `callstats` script."""
    app(prog_name="callstats")


if __name__ == "__main__":
    main()
