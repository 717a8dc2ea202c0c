"""The `callstats` command's start-up as a newcomer meets it: every refusal is one line starting
`callstats COMMAND:` (unwrapped, stderr not a terminal) with the documented exit code, help pages
carry no type labels, and no command creates or replaces a file it should not. Real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main

from callstats.cli import PlainHelpCommand, app
from callstats.demo.runner import is_demo_database

UNKNOWN = "00000000-0000-4000-8000-000000000000"
IN_MEMORY_URLS = ["sqlite:///", "sqlite://", "sqlite:///:memory:"]


def run(
    *args: str, cwd: Path, database_url: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`callstats ARGS` with stdout and stderr captured (not a terminal), no CALLSTATS_* of ours."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLSTATS_") and k != "COLUMNS"}
    if database_url is not None:
        environ["CALLSTATS_DATABASE_URL"] = database_url
    environ.update(env)
    argv = [sys.executable, "-m", "callstats.cli", *args]
    return subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=120)


def one_line(done: subprocess.CompletedProcess[str], command: str, code: int = 2) -> str:
    """The single stderr line of a refused command, checked to start with `callstats COMMAND: `."""
    assert done.returncode == code, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"callstats {command}: "), lines[0]
    assert ".;" not in lines[0] and "Traceback" not in done.stderr
    return lines[0]


def migrated(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    assert run("migrate", cwd=tmp_path, database_url=url).returncode == 0
    return url


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("port", ["80000", "65536", "-1"])
def test_a_port_outside_0_to_65535_is_a_usage_error(tmp_path: Path, command: str, port: str) -> None:
    """Not taken modulo 65536: click refuses it (exit code 2) before anything starts or is created."""
    done = run(command, "--port", port, cwd=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert done.returncode == 2, done
    assert "Invalid value for '--port'" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_demo_in_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    line = one_line(run("demo", "--port", "0", "--database", "/nonexistent-dir/x.db", cwd=tmp_path), "demo")
    assert "cannot create /nonexistent-dir/x.db: no directory /nonexistent-dir" in line


@pytest.mark.parametrize("url", IN_MEMORY_URLS)
@pytest.mark.parametrize(
    "args", [["migrate"], ["keys", "list"], ["serve", "--port", "0"], ["reconcile", UNKNOWN]], ids=" ".join
)
def test_an_sqlite_url_without_a_file_is_one_line(tmp_path: Path, url: str, args: list[str]) -> None:
    """Empty path, no path, in-memory: refused when the settings are read, whatever the command."""
    line = one_line(run(*args, cwd=tmp_path, database_url=url), " ".join(a for a in args if a[0].isalpha()))
    assert "an SQLite URL needs a file path" in line and "in-memory database is not supported" in line
    assert list(tmp_path.iterdir()) == []


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path: Path) -> None:
    """Any exception a command does not expect: one line naming its type, exit code 1."""
    url = migrated(tmp_path)
    broken = "import callstats.cli as c; c.accounts.list_keys = lambda db: 1 / 0; c.main()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSTATS_")}
    env["CALLSTATS_DATABASE_URL"] = url
    for debug in ([], ["--debug"]):
        argv = [sys.executable, "-c", broken, *debug, "keys", "list"]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        if debug:
            assert done.returncode == 1 and "Traceback" in done.stderr and "ZeroDivisionError" in done.stderr
        else:
            line = one_line(done, "keys list", code=1)
            assert line.endswith("unexpected error: ZeroDivisionError; run with --debug to see where"), line


def test_reconcile_exit_codes(tmp_path: Path) -> None:
    """2: not a UUID (click's usage error) or no such campaign; 1 stays 'the counters differ'."""
    url = migrated(tmp_path)
    malformed = run("reconcile", "nope", cwd=tmp_path, database_url=url)
    assert malformed.returncode == 2 and "'nope' is not a UUID" in malformed.stderr, malformed
    line = one_line(run("reconcile", UNKNOWN, cwd=tmp_path, database_url=url), "reconcile")
    assert line == f"callstats reconcile: no campaign {UNKNOWN} in this database"


@pytest.mark.parametrize("command", ["watch", "import"])
def test_a_campaign_id_that_is_not_a_uuid_is_a_usage_error(tmp_path: Path, command: str) -> None:
    (tmp_path / "c.csv").write_text("phone\n+14155550100\n")
    extra = ["c.csv"] if command == "import" else []
    done = run(command, "nope", *extra, "--key", "k", "--url", "http://127.0.0.1:1", cwd=tmp_path)
    assert done.returncode == 2 and "'nope' is not a UUID" in done.stderr, done


@pytest.mark.parametrize("command", ["watch", "import"])
def test_a_server_url_without_a_scheme_is_refused_at_once(tmp_path: Path, command: str) -> None:
    """Both client commands check --url with the same function, before any connection."""
    (tmp_path / "c.csv").write_text("phone\n+14155550100\n")
    extra = ["c.csv"] if command == "import" else []
    done = run(command, UNKNOWN, *extra, "--key", "k", "--url", "127.0.0.1:18013", cwd=tmp_path)
    line = one_line(done, command)
    assert "'127.0.0.1:18013' must start with http:// or https://" in line


def test_long_messages_stay_on_one_line_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """rich wrapped them at 80 columns off a terminal; now one message is one line, however long."""
    (tmp_path / "c.csv").write_text("phone\n+14155550100\n")
    dead = "http://127.0.0.1:1/" + "a-long-path-segment/" * 5
    imported = one_line(
        run("import", UNKNOWN, "c.csv", "--key", "k", "--url", dead, cwd=tmp_path), "import", 1
    )
    assert imported.startswith("callstats import: stopped: cannot reach") and len(imported) > 100, imported
    done = run("watch", UNKNOWN, "--key", "k", "--url", dead, "--timeout", "0.5", cwd=tmp_path)
    watched = one_line(done, "watch", 1)
    assert watched.endswith("; gave up after 0.5 s (--timeout)") and len(watched) > 80, watched


def test_redis_and_scope_errors(tmp_path: Path) -> None:
    """No stray '.;' after a driver's sentence; --scope is click's choice of read|write."""
    url = migrated(tmp_path)
    line = one_line(
        run(
            "serve",
            "--port",
            "0",
            cwd=tmp_path,
            database_url=url,
            CALLSTATS_REDIS_URL="redis://127.0.0.1:1/0",
        ),
        "serve",
    )
    assert "Connection refused; check that it runs" in line, line
    done = run("keys", "create", "--account", "acme", "--scope", "admin", cwd=tmp_path, database_url=url)
    assert done.returncode == 2 and "Invalid value for '--scope'" in done.stderr, done
    assert "--scope [read|write]" in run("keys", "create", "--help", cwd=tmp_path).stdout


def all_commands() -> list[list[str]]:
    """Every command path of the app, the groups included."""
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize("args", all_commands(), ids=lambda args: " ".join(args) or "callstats")
def test_help_has_no_type_labels(tmp_path: Path, args: list[str]) -> None:
    """No `<str>`, `<file>` or `{CAMPAIGN_ID}` anywhere, and bracketed notes spaced the same way."""
    done = run(*args, "--help", cwd=tmp_path)
    assert done.returncode == 0, done
    assert not re.search(r"<[a-z][\w |\[\]]*>", done.stdout) and "{" not in done.stdout, done.stdout
    assert "]  [" not in done.stdout, done.stdout
    command = typer.main.get_command(app)
    for name in args:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert isinstance(command, PlainHelpCommand) or hasattr(command, "commands")


@pytest.mark.parametrize(
    "args", [["serve", "--port", "0"], ["keys", "list"], ["reconcile", UNKNOWN]], ids=str
)
def test_a_missing_sqlite_file_is_not_created(tmp_path: Path, args: list[str]) -> None:
    """serve, keys and reconcile on a database never migrated: one line, and no empty file left."""
    line = one_line(run(*args, cwd=tmp_path), " ".join(a for a in args[:2] if a[0].isalpha()))
    assert f"no database at {tmp_path / 'callstats.db'}: run `callstats migrate`" in line
    assert list(tmp_path.iterdir()) == []


def start_demo(tmp_path: Path, database: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / f"{name}.out"
    argv = [sys.executable, "-m", "callstats.cli", "demo", "--contacts", "20", "--port", "0"]
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [*argv, "--database", str(database)], cwd=tmp_path, stdout=stdout, stderr=stdout
        )
    return proc, out


def wait_for(out: Path, proc: subprocess.Popen[bytes], text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in out.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_a_second_demo_on_a_running_demos_file_is_refused(tmp_path: Path) -> None:
    """The running demo holds PATH.lock: the second one is one line and exit code 2, the file kept;
    an empty file is taken as new; after the demo ends its lock file is gone."""
    database = tmp_path / "demo.db"
    database.touch()  # empty: nothing to lose
    first, out = start_demo(tmp_path, database, "first")
    try:
        wait_for(out, first, "Ctrl-C stops it.")
        assert is_demo_database(database.read_bytes()[:100])
        before = database.stat().st_ino
        line = one_line(run("demo", "--port", "0", "--database", str(database), cwd=tmp_path), "demo")
        assert "demo.db is in use by a running demo" in line and "--force" in line, line
        assert database.stat().st_ino == before and first.poll() is None
    finally:
        stop(first)
    assert first.returncode == 0 and not (tmp_path / "demo.db.lock").exists()
