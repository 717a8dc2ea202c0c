"""callstats-client installs on its own: into a fresh virtual environment holding nothing else, it brings
httpx and httpx-sse and no server code or database driver, and talks to a served process from there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.client.conftest import Served

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
# What the server needs and the client must never bring: its own package and its storage and web stack.
SERVER_SIDE = {"callstats", "sqlalchemy", "psycopg", "psycopg-binary", "redis", "hiredis", "alembic"}
SERVER_SIDE |= {"fastapi", "uvicorn", "starlette", "pydantic", "limits", "phonenumbers", "orjson"}
PIP_TIMEOUT_S = 300


def _run(*argv: str | Path) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_client_installs_alone_into_a_fresh_venv(tmp_path: Path, sqlite_served: Served) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    # The package registries as the Makefile's `pip install` reaches them (the machine's pip settings).
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", CLIENT)
    installed = {d["name"].lower() for d in json.loads(_run(python, "-m", "pip", "list", "--format=json"))}
    assert {"callstats-client", "httpx", "httpx-sse"} <= installed
    assert installed & SERVER_SIDE == set()
    metadata = "import importlib.metadata as m, json; print(json.dumps(m.requires('callstats-client')))"
    requires = json.loads(_run(python, "-c", metadata))
    assert sorted(r.split(">")[0] for r in requires) == ["httpx", "httpx-sse"]
    script = (
        "import sys, callstats_client as c\n"
        "assert 'callstats' not in sys.modules\n"
        f"api = c.Client({sqlite_served.base_url!r}, {sqlite_served.read_key!r})\n"
        "print(c.__file__, api.health().status, api.get_campaigns(limit=1).limit)\n"
    )
    where, status, limit = _run(python, "-c", script).split()
    assert where.startswith(str(venv)) and (status, limit) == ("ok", "1")
