"""Settings, read from CALLSTATS_* environment variables once and passed in explicitly."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime

import httpx
import phonenumbers
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from callstats.urls import BadUrl, check_url

DEFAULT_DATABASE_URL = "sqlite:///./callstats.db"
# A Fernet key: 32 bytes in URL-safe base64, 44 characters ending in "=" (cryptography's Fernet spec).
FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")
GENERATE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
METRICS_TOKEN_MIN_CHARS = 16
GENERATE_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class Settings(BaseSettings):
    """Everything the service can be configured with."""

    # A refused value is never quoted in the error's text: it may be a key or a database password.
    model_config = SettingsConfigDict(env_prefix="CALLSTATS_", extra="ignore", hide_input_in_errors=True)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    stats_rate_limit: str = "200/minute"
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    default_region: str = "US"  # ISO 3166-1 alpha-2, one phonenumbers knows (checked below)
    # Event times before this, or more than events_max_ahead_seconds past the server's clock, are refused.
    events_earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    events_max_ahead_seconds: int = Field(default=86_400, ge=0, le=100 * 366 * 86_400)
    counter_slots: int = Field(default=16, ge=1, le=256)
    db_pool_size: int = Field(default=20, ge=1)
    # Longest wait on the database for one step (connect, statement, commit, free connection, lock): then 503.
    db_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    log_level: str = "info"
    # After SIGTERM/SIGINT the server is gone within this time: open requests get all but 3 s of it.
    drain_seconds: float = Field(default=10.0, ge=1, le=3600)
    access_log: bool = True  # one line per request (docs/deployment.md, Logs), whatever log_level says
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    stream_poll_seconds: float | None = Field(default=None, gt=0)  # None: 0.2 s on SQLite, 1 s otherwise
    stream_min_interval_seconds: float = Field(default=0.15, ge=0)  # at most ~7 messages a second
    stream_max_seconds: float = Field(default=600.0, gt=0)
    # Carrier signing secrets are sealed with the first of these comma-separated Fernet keys and opened
    # with any of them (docs/carriers.md). Unset: a key file beside an SQLite database, else no sealing.
    secret_key: SecretStr | None = None
    # The base of the webhook URLs handed out, http(s)://HOST[:PORT][/PATH]; unset, each request's own.
    public_url: str | None = None
    # Peers whose X-Forwarded-Proto and X-Forwarded-Host are believed: comma-separated IPs or CIDRs.
    trusted_proxies: str = ""
    # GET /metrics: with a token, only `Authorization: Bearer <token>` reads it; without, loopback clients.
    metrics_token: SecretStr | None = None
    # Where every worker process writes its metric values (prometheus-client's multiprocess mode); the
    # library's own variable, read by it at import: `callstats serve --workers N` sets it per run.
    prometheus_multiproc_dir: str | None = Field(default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR")
    # Alert webhooks (docs/alerts.md): URLs of loopback, private or link-local hosts are refused unless set.
    webhook_allow_private: bool = False
    # The dispatcher looks for messages due this often, and evaluates the timed alerts (minutes since the
    # last event, stalls) every alert_timer_seconds; a failed attempt is retried after about
    # webhook_retry_base_seconds * 2^(attempts - 1) (with jitter, at most an hour) for 24 hours.
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    alert_timer_seconds: float = Field(default=30.0, gt=0, le=86_400)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: str) -> str:
        """A URL callstats can run on (database_url_problem); else every command stops at start-up."""
        problem = database_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        """Upper-cased; a region phonenumbers has no numbering plan for is refused at start-up."""
        code = value.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}: use an ISO 3166-1 alpha-2 code such as US, GB or DE")
        return code

    @field_validator("secret_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        """None when unset or blank; else every comma-separated part a Fernet key (never echoed)."""
        if value is None or not value.get_secret_value().strip():
            return None
        problem = secret_key_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        """None when unset or blank; else at least METRICS_TOKEN_MIN_CHARS characters (never echoed)."""
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        if len(token) < METRICS_TOKEN_MIN_CHARS or not token.isprintable() or " " in token:
            raise ValueError(
                f"must be at least {METRICS_TOKEN_MIN_CHARS} printable characters without spaces; "
                f"generate one with: {GENERATE_TOKEN}"
            )
        return SecretStr(token)

    @field_validator("prometheus_multiproc_dir")
    @classmethod
    def _multiproc_dir(cls, value: str | None) -> str | None:
        """None when unset or blank."""
        return value if value and value.strip() else None

    @field_validator("public_url")
    @classmethod
    def _public_base(cls, value: str | None) -> str | None:
        """None when unset or blank; else http(s)://HOST[:PORT][/PATH] without its trailing slash."""
        if value is None or not value.strip():
            return None
        return public_url_checked(value.strip())

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        """The comma-separated IPs and CIDR networks, each checked, rejoined without spaces."""
        parts = [part.strip() for part in value.split(",") if part.strip()]
        for part in parts:
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(
                    f"{part[:64]!r} is not an IP address or a CIDR network such as 10.0.0.0/8"
                ) from None
        return ",".join(parts)


def secret_keys(value: str) -> list[str]:
    """The Fernet keys of CALLSTATS_SECRET_KEY (or a key file), in order: comma- or line-separated."""
    return [part.strip() for part in re.split(r"[,\s]+", value) if part.strip()]


def secret_key_problem(value: str) -> str | None:
    """Why CALLSTATS_SECRET_KEY holds no usable list of Fernet keys, naming a bad key by position only."""
    keys = secret_keys(value)
    if not keys:
        return f"holds no key; generate one with: {GENERATE_KEY}"
    for position, key in enumerate(keys, start=1):
        if not FERNET_KEY.fullmatch(key):
            return (
                f"key {position} of {len(keys)} is not a Fernet key (44 characters of URL-safe base64 "
                f"ending in '='); generate one with: {GENERATE_KEY}"
            )
    return None


def public_url_checked(url: str) -> str:
    """CALLSTATS_PUBLIC_URL without its trailing slash; ValueError unless http(s)://HOST[:PORT][/PATH]
    with no user, query or fragment (the webhook URLs are this base plus /webhooks/...)."""
    try:
        base = check_url(url)
        parsed = httpx.URL(base)
    except BadUrl as exc:
        raise ValueError(str(exc)) from None
    if parsed.userinfo or parsed.query or parsed.fragment or "?" in url or "#" in url:
        raise ValueError(f"{url!r} must be http(s)://HOST[:PORT][/PATH], with no user, query or fragment")
    return base


def sqlalchemy_url(database_url: str) -> str:
    """Map a plain postgresql:// or sqlite:/// URL onto the driver callstats uses."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url


def is_sqlite(database_url: str) -> bool:
    """Whether the URL names an SQLite database."""
    return database_url.startswith("sqlite")


def database_url_problem(url: str) -> str | None:
    """One line saying why CALLSTATS_DATABASE_URL cannot name a callstats database, or None.

    It must be a PostgreSQL URL or an SQLite URL naming a file: `sqlite:///` (no path), `sqlite://`
    and `sqlite:///:memory:` are refused, because an in-memory database is private to one
    connection of one process, while every command and server process must use the same file.
    """
    try:
        parsed = make_url(sqlalchemy_url(url))
        backend = parsed.get_backend_name()
    except (ArgumentError, ValueError) as exc:
        reason = "not a URL" if isinstance(exc, ArgumentError) else str(exc)
    else:
        if backend == "postgresql":
            return None
        if backend == "sqlite":
            path = parsed.database or ""
            in_memory = path == ":memory:" or path.startswith("file::memory:") or "mode=memory" in url
            if path and not in_memory:
                return None
            reason = (
                "an SQLite URL needs a file path; an in-memory database is not supported, "
                "since every command and server process must use the same file"
            )
        else:
            reason = f"callstats does not run on {backend!r}"
    return (
        f"CALLSTATS_DATABASE_URL={redacted(url)!r} is malformed ({reason}): "
        "give sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    )


def redacted(url: str) -> str:
    """The URL with its password shown as *** (also when it does not parse as a URL)."""
    try:
        parsed = make_url(url)
        return url if parsed.password is None else parsed.render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
