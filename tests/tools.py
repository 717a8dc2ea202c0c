"""Skipping a test for a system tool that is not installed, in one recognizable form.

`make system-deps` installs the tools (Debian packages); without them their tests skip with a
reason starting MISSING_TOOL, which tests/conftest.py groups by tool in the run's summary
("skipped for a missing tool: chromium (12 tests), nginx (3)").
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

MISSING_TOOL = "missing tool: "
CHROMIUM = Path("/usr/bin/chromium")
NGINX = Path("/usr/sbin/nginx")


def missing_tool_reason(tool: str, detail: str) -> str:
    """The reason a test skips for a missing `tool`: 'missing tool: TOOL (DETAIL); install it with ...'."""
    return f"{MISSING_TOOL}{tool} ({detail}); install it with `make system-deps`"


def needs_tool(tool: str, present: bool, detail: str) -> pytest.MarkDecorator:
    """A skipif mark for tests that drive `tool`, skipping them when it is not `present`."""
    return pytest.mark.skipif(not present, reason=missing_tool_reason(tool, detail))


def skip_missing_tool(tool: str, detail: str) -> NoReturn:
    """Skip the running test (or fixture) for a missing `tool`."""
    pytest.skip(missing_tool_reason(tool, detail))


def tool_of(reason: str) -> str | None:
    """The tool a skip reason names, or None when the test was skipped for another reason."""
    text = reason.removeprefix("Skipped: ")
    if not text.startswith(MISSING_TOOL):
        return None
    return text.removeprefix(MISSING_TOOL).split(" ", 1)[0]


def has_redis_server() -> bool:
    """Whether redis-server is installed (the tests that start a Redis of their own need it)."""
    return shutil.which("redis-server") is not None


def has_postgres_server() -> bool:
    """Whether PostgreSQL's server binaries (initdb, postgres) are installed."""
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


needs_chromium = needs_tool("chromium", CHROMIUM.exists(), f"{CHROMIUM} drives the pages headless")
needs_nginx = needs_tool("nginx", NGINX.exists(), f"{NGINX} sits in front of two servers")
needs_redis_server = needs_tool(
    "redis-server", has_redis_server(), "a private Redis the test may flush or kill"
)
