"""Settings: a bad CALLSTATS_* value is refused at start-up, in one line, before anything runs."""

from __future__ import annotations

import subprocess

import pytest
from pydantic import ValidationError

from callstats.config import Settings
from tests.servers import callstats_argv, server_env


@pytest.mark.parametrize(("given", "expected"), [("GB", "GB"), ("gb", "GB"), (" de ", "DE")])
def test_default_region_is_a_known_region_upper_cased(given: str, expected: str) -> None:
    """ISO 3166-1 alpha-2 codes phonenumbers knows, in any case."""
    assert Settings(default_region=given).default_region == expected


@pytest.mark.parametrize("given", ["UK", "USA", "", "1"])
def test_an_unknown_default_region_is_refused(given: str) -> None:
    """`UK` is not ISO 3166 (GB is): refused, as createCampaign refuses it, not stored on campaigns."""
    with pytest.raises(ValidationError, match="unknown region"):
        Settings(default_region=given)


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("default_region", "UK", "CALLSTATS_DEFAULT_REGION: unknown region 'UK'"),
        ("events_earliest", "garbage", "CALLSTATS_EVENTS_EARLIEST:"),
    ],
)
def test_the_cli_names_a_bad_setting_in_one_line(setting: str, value: str, says: str) -> None:
    """`callstats serve` exits 2 with one line naming the variable, and no traceback."""
    env = server_env("sqlite:///unused.db", **{setting: value})
    done = subprocess.run(
        callstats_argv("serve", "--port", "1"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
