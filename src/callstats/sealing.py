"""Secrets at rest: the carriers' signing secrets are stored sealed, never in clear.

Fernet (the `cryptography` package's; AES-128-CBC then HMAC-SHA256, https://github.com/fernet/spec)
seals a secret into a self-authenticating token, and MultiFernet seals with the first of several
keys and opens with any of them, so a key is rotated by putting a new one first.

The keys come from CALLSTATS_SECRET_KEY. Without it, a database in an SQLite file keeps its key
in a file beside it, `<database path>.secret-key` (mode 0600, made on the first seal and reused
after), so the demo and a fresh install need no set-up. A PostgreSQL database has no such place:
sealing is then refused with a 503 saying how to set the key, and nothing else is affected.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import make_url

from callstats.config import GENERATE_KEY, Settings, is_sqlite, secret_key_problem, secret_keys
from callstats.errors import ServiceUnavailable

KEY_FILE_SUFFIX = ".secret-key"
_OPENED_CACHE = 1024  # tokens whose plaintext is kept: a webhook opens its connection's secret per request


class NoSecretKey(ServiceUnavailable):
    """A secret cannot be sealed: no key is set (PostgreSQL without CALLSTATS_SECRET_KEY), or the key
    file cannot be made or read."""

    default_message = (
        "Carrier secrets cannot be stored: no encryption key. Set CALLSTATS_SECRET_KEY to a Fernet key "
        f"(generate one with: {GENERATE_KEY}) and restart the server"
    )


class UnreadableSecret(ServiceUnavailable):
    """A stored secret that none of the keys opens (the key it was sealed with is gone)."""

    default_message = (
        "A stored carrier secret cannot be opened with the configured keys: put the key it was sealed "
        "with back in CALLSTATS_SECRET_KEY, after the new one"
    )


class SecretBox:
    """Seals and opens secrets with a list of Fernet keys, or with the key of a key file.

    `keys` (URL-safe base64 Fernet keys) win when given; else `key_file`, read on first need and
    created on the first seal; with neither, seal and unseal raise NoSecretKey. Thread-safe.
    """

    def __init__(self, keys: Sequence[str] = (), key_file: Path | None = None) -> None:
        self._keys = list(keys)
        self._key_file = None if self._keys else key_file
        self._fernet: MultiFernet | None = _multi(self._keys) if self._keys else None
        self._lock = threading.Lock()
        self._opened: dict[str, str] = {}

    @property
    def key_file(self) -> Path | None:
        """The key file used when no key is set (None when keys are set or there is no file to use)."""
        return self._key_file

    def seal(self, plaintext: str) -> str:
        """The Fernet token (ASCII text) of `plaintext`, sealed with the first key.

        Raises NoSecretKey (503) when there is no key and none can be made.
        """
        return self._sealer(create=True).encrypt(plaintext.encode()).decode("ascii")

    def unseal(self, token: str) -> str:
        """The plaintext of a token `seal` made with any of the keys.

        Raises UnreadableSecret (503) when no key opens it (or the token is not one), NoSecretKey when
        there is no key at all.
        """
        opened = self._opened.get(token)
        if opened is not None:
            return opened
        try:
            opened = self._sealer(create=False).decrypt(token.encode()).decode()
        except (InvalidToken, UnicodeError):
            raise UnreadableSecret() from None
        if len(self._opened) >= _OPENED_CACHE:
            self._opened.clear()
        self._opened[token] = opened
        return opened

    def _sealer(self, create: bool) -> MultiFernet:
        """The keys in use, read (or, with `create`, made) from the key file on first need."""
        if self._fernet is not None:
            return self._fernet
        if self._key_file is None:
            raise NoSecretKey()
        with self._lock:
            if self._fernet is None:
                self._fernet = _multi(_file_keys(self._key_file, create))
            return self._fernet


def _multi(keys: Sequence[str]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode("ascii")) for key in keys])


def _file_keys(path: Path, create: bool) -> list[str]:
    """The keys of a key file; when it is missing, a new one with one fresh key (`create`) or an error.

    Raises NoSecretKey when the file cannot be read or made, or holds no Fernet key, and
    UnreadableSecret when it is missing and not to be made (nothing was ever sealed with it).
    """
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        if not create:
            raise UnreadableSecret(
                f"The key file {path.name} beside the database is missing: restore it from the backup "
                "made with the database, or set CALLSTATS_SECRET_KEY to the key it held"
            ) from None
        text = _create_key_file(path)
    except (OSError, UnicodeError):
        raise NoSecretKey(f"Cannot read the key file {path.name}: {_hint()}") from None
    if secret_key_problem(text):
        raise NoSecretKey(f"The key file {path.name} holds no usable Fernet key: {_hint()}")
    return secret_keys(text)


def _create_key_file(path: Path) -> str:
    """Write a fresh key to `path` (mode 0600) unless another process did first; the file's text.

    The key is written to a private temporary file in the same directory, then linked to `path`:
    the link fails when the file exists, so two processes starting together agree on one key, and
    nobody ever reads a half-written file.
    """
    key = Fernet.generate_key().decode("ascii") + "\n"
    try:
        handle, temporary = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)  # mode 0600
    except OSError:
        raise NoSecretKey(f"Cannot create the key file {path.name}: {_hint()}") from None
    try:
        with os.fdopen(handle, "w", encoding="ascii") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text(encoding="ascii")
        _sync_directory(path.parent)
        return key
    except OSError:
        raise NoSecretKey(f"Cannot create the key file {path.name}: {_hint()}") from None
    finally:
        Path(temporary).unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """Make the new file's name durable (a key lost in a crash would lose every secret sealed with it)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _hint() -> str:
    return f"set CALLSTATS_SECRET_KEY to a Fernet key instead (generate one with: {GENERATE_KEY})"


def key_file_path(database_url: str) -> Path | None:
    """Where an SQLite database's key file is: `<absolute database path>.secret-key`; None for
    PostgreSQL and for an in-memory SQLite database (no file to put it beside)."""
    if not is_sqlite(database_url):
        return None
    database = make_url(database_url).database or ""
    if (
        not database
        or database == ":memory:"
        or database.startswith("file:")
        or "mode=memory" in database_url
    ):
        return None
    return Path(os.path.abspath(database + KEY_FILE_SUFFIX))


def secret_box(settings: Settings) -> SecretBox:
    """The app's SecretBox: CALLSTATS_SECRET_KEY's keys when set, else the SQLite key file, else none
    (sealing then answers NoSecretKey). Reads no file: the key file is read or made on first need."""
    if settings.secret_key is not None:
        return SecretBox(keys=secret_keys(settings.secret_key.get_secret_value()))
    return SecretBox(key_file=key_file_path(settings.database_url))
