"""The `callstats` command itself: one-line errors for a bad database URL, --debug, --version, clean
--help, migrate's report, keys create's account check and the import summary's plural."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from callstats import __version__
from callstats.db.migrate import alembic_config
from tests.factories import create_campaign, generate_csv
from tests.servers import callstats_argv, run_cli, server_env
from tests.stream.helpers import new_key, serving

SECRET = "s3cr3t-pw"
UNREACHABLE = f"postgresql://postgres:{SECRET}@127.0.0.1:1/x"
MALFORMED = "nonsense://"
NO_DIRECTORY = "sqlite:////nonexistent-callstats-dir/sub/callstats.db"
COMMANDS = [
    ["migrate"],
    ["serve", "--port", "0"],
    ["keys", "create", "--account", "acme"],
    ["keys", "list"],
    ["keys", "revoke", "k_0000000000"],
    ["reconcile", "00000000-0000-4000-8000-000000000000"],
]


def callstats(
    *args: str, database_url: str, timeout: float = 120, **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run `callstats ARGS` on this database URL (nothing else of ours in its environment)."""
    env = server_env(database_url, **settings)
    return subprocess.run(callstats_argv(*args), env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (UNREACHABLE, "cannot use the database postgresql://postgres:***@127.0.0.1:1/x"),
        (MALFORMED, "CALLSTATS_DATABASE_URL='nonsense://' is malformed"),
        (NO_DIRECTORY, "unable to open database file; check that the file's directory exists"),
    ],
    ids=["unreachable", "malformed", "no-directory"],
)
@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_bad_database_url_is_one_line_and_exit_code_2(args: list[str], url: str, says: str) -> None:
    """Every command that opens the database: one line saying what is wrong, no traceback, no password."""
    done = callstats(*args, database_url=url)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert says in lines[0], lines[0]
    assert SECRET not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback() -> None:
    """`callstats --debug COMMAND`: the full traceback instead of the line."""
    done = callstats("--debug", "keys", "list", database_url=UNREACHABLE)
    assert done.returncode != 0
    assert "Traceback (most recent call last)" in done.stderr
    assert "OperationalError" in done.stderr


def test_version() -> None:
    done = callstats("--version", database_url=MALFORMED)  # needs no database
    assert (done.returncode, done.stdout) == (0, f"callstats {__version__}\n")


HELP_PAGES = [
    [],
    ["serve"],
    ["migrate"],
    ["demo"],
    ["import"],
    ["watch"],
    ["reconcile"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
]


@pytest.mark.parametrize("args", HELP_PAGES, ids=lambda args: " ".join(args) or "callstats")
def test_help_shows_no_type_beside_a_flag(args: list[str]) -> None:
    """Flags (--json, --force, --debug, --help) take no value, so their help shows none."""
    done = callstats(*args, "--help", database_url=MALFORMED)
    assert done.returncode == 0, done.stderr
    assert "Usage: callstats" in done.stdout
    assert "<bool>" not in done.stdout, done.stdout
    for flag in ("--help", "--json", "--force", "--debug"):
        for line in done.stdout.splitlines():
            if line.strip().startswith(flag + " "):
                assert "<" not in line.split(flag, 1)[1].split("  ")[0], line


@pytest.mark.parametrize("account", ["", "   "], ids=["empty", "spaces"])
def test_keys_create_refuses_an_account_without_a_name(tmp_path: Path, account: str) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    assert callstats("migrate", database_url=url).returncode == 0
    done = callstats("keys", "create", "--account", account, database_url=url)
    assert done.returncode == 2, done
    assert "an account needs a name" in done.stderr
    listing = callstats("keys", "list", database_url=url)
    assert listing.returncode == 0 and len(listing.stdout.strip().splitlines()) == 1  # the header only


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    """Created, then already up to date, then (from an older revision) upgraded from X to Y."""
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    created = callstats("migrate", database_url=url)
    assert created.returncode == 0, created.stderr
    head = created.stdout.removeprefix("Database schema created at revision ").removesuffix(".\n")
    assert created.stdout == f"Database schema created at revision {head}.\n" and head
    again = callstats("migrate", database_url=url)
    assert again.stdout == f"Database schema already up to date at revision {head}.\n"

    older = tmp_path / "older.db"
    command.upgrade(alembic_config(f"sqlite:///{older}"), "head-1")
    previous = ScriptDirectory.from_config(alembic_config(url)).get_revision(head).down_revision
    upgraded = callstats("migrate", database_url=f"sqlite:///{older}")
    assert upgraded.stdout == f"Database schema upgraded from revision {previous} to {head}.\n", upgraded


def test_the_import_summary_says_1_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    assert callstats("migrate", database_url=url).returncode == 0
    key = new_key(url)
    made = generate_csv(tmp_path / "contacts.csv", 10)
    with serving(url, tmp_path) as server, httpx.Client(headers={"x-api-key": key}, timeout=30) as http:
        campaign_id = create_campaign(http, server.base_url)
        done = run_cli(server.base_url, key, campaign_id, str(made.path))
    assert done.returncode == 0, done.stderr
    assert "rows/s, 1 request)" in done.stdout, done.stdout
