"""Settings: a bad CALLSTATS_* value is refused at start-up, in one line, before anything runs."""

from __future__ import annotations

import subprocess

import pytest
from cryptography.fernet import Fernet
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


FERNET_KEY = Fernet.generate_key().decode()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://hooks.example.com", "https://hooks.example.com"),
        ("https://hooks.example.com/", "https://hooks.example.com"),
        (" http://10.0.0.1:8080/callstats/ ", "http://10.0.0.1:8080/callstats"),
        ("", None),
    ],
)
def test_public_url_is_kept_without_its_trailing_slash(given: str, expected: str | None) -> None:
    """CALLSTATS_PUBLIC_URL: http(s)://HOST[:PORT][/PATH], its trailing slash dropped; blank is unset."""
    assert Settings(public_url=given).public_url == expected


@pytest.mark.parametrize(
    "given",
    ["hooks.example.com", "ftp://hooks.example.com", "https://", "https://u:p@hooks.example.com",
     "https://hooks.example.com/?a=1", "https://hooks.example.com/#top"],
)  # fmt: skip
def test_a_public_url_that_cannot_be_a_base_is_refused(given: str) -> None:
    """No scheme, another scheme, no host, a user, a query or a fragment: refused at start-up."""
    with pytest.raises(ValidationError, match="public_url"):
        Settings(public_url=given)


def test_trusted_proxies_are_ips_or_networks() -> None:
    """CALLSTATS_TRUSTED_PROXIES: comma-separated IPs and CIDRs, kept without spaces; others refused."""
    assert Settings(trusted_proxies=" 10.0.0.1 , 10.0.0.0/8,,2001:db8::/32 ").trusted_proxies == (
        "10.0.0.1,10.0.0.0/8,2001:db8::/32"
    )
    assert Settings().trusted_proxies == ""
    for bad in ("nginx", "10.0.0.0/33", "10.0.0.1/8/2", "*"):
        with pytest.raises(ValidationError, match="not an IP address or a CIDR network"):
            Settings(trusted_proxies=bad)


def test_secret_key_must_hold_fernet_keys_and_is_never_echoed() -> None:
    """CALLSTATS_SECRET_KEY: one or more Fernet keys; a bad one is named by position, never quoted; blank
    is unset."""
    assert Settings(secret_key=f"{FERNET_KEY},{FERNET_KEY}").secret_key is not None
    assert Settings(secret_key="  ").secret_key is None
    bad = "my-password-is-hunter2"
    with pytest.raises(ValidationError, match="key 2 of 2 is not a Fernet key") as refused:
        Settings(secret_key=f"{FERNET_KEY},{bad}")
    assert bad not in str(refused.value) and FERNET_KEY not in str(refused.value)
    assert FERNET_KEY not in repr(Settings(secret_key=FERNET_KEY))


def test_the_cli_names_a_bad_secret_key_without_quoting_it() -> None:
    """`callstats serve` with a CALLSTATS_SECRET_KEY that is no Fernet key: exit 2, one line naming the
    variable and how to make a key, the value nowhere."""
    env = server_env("sqlite:///unused.db", secret_key="hunter2-not-a-key")
    done = subprocess.run(
        callstats_argv("serve", "--port", "1"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "CALLSTATS_SECRET_KEY: key 1 of 1 is not a Fernet key" in done.stderr
    assert "Fernet.generate_key()" in done.stderr and "hunter2" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
