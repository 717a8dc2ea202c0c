"""The run's summary names the system tools whose tests were skipped, grouped by tool (tests/tools.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.tools import missing_tool_reason, tool_of

ROOT = Path(__file__).resolve().parent.parent

SKIPPING = """
import pytest
from tests.tools import needs_tool, skip_missing_tool

@needs_tool("chromium", False, "a browser")
@pytest.mark.parametrize("n", [1, 2])
def test_page(n):
    pass

@pytest.fixture
def nginx():
    skip_missing_tool("nginx", "a proxy")

def test_proxy(nginx):
    pass

def test_other():
    pytest.skip("no CALLSTATS_TEST_DATABASE_URL")

def test_runs():
    assert True
"""


def test_tool_of_reads_the_reason_back() -> None:
    """A missing-tool reason names its tool, with or without pytest's 'Skipped: '; others name none."""
    reason = missing_tool_reason("redis-server", "a private Redis")
    assert tool_of(reason) == "redis-server"
    assert tool_of(f"Skipped: {reason}") == "redis-server"
    assert tool_of("no CALLSTATS_TEST_DATABASE_URL") is None


def test_the_summary_counts_skips_per_missing_tool(tmp_path: Path) -> None:
    """Marks and fixtures alike are counted; a skip for another reason is not a missing tool."""
    module = tmp_path / "test_skipping.py"
    module.write_text(SKIPPING)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest", str(module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        "skipped for a missing tool: chromium (2 tests), nginx (1 test); `make system-deps` installs them"
        in run.stdout
    )
    assert "1 passed, 4 skipped" in run.stdout
