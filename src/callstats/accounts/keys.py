"""API key format: a recognizable prefix, a public id, a secret and a checksum. Pure.

`cs_<key id: 12>_<secret: 32><checksum: 6>`, base62. The checksum (CRC32) lets a
mistyped key be refused before any database lookup; only a SHA-256 hash of the
whole key is stored, and it is compared in constant time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "cs_"
ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH: Final = 12
SECRET_LENGTH: Final = 32
CHECKSUM_LENGTH: Final = 6
SCOPES: Final = ("read", "write")
HEADER: Final = b"x-api-key"  # the request header carrying a key, as ASGI names it (lower case)
_KEY_RE: Final = re.compile(
    rf"^{PREFIX}([0-9A-Za-z]{{{KEY_ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly generated key: the plaintext is shown once and never stored."""

    key_id: str
    plaintext: str
    secret_hash: str


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def presented(field_value: str | bytes | None) -> str:
    """The key an `x-api-key` header carries: its value without leading or trailing spaces and tabs.

    The one reader of that header: the framework's value (str, None when absent) or the raw ASGI bytes
    of its first occurrence (decoded as latin-1, as HTTP field values are octets). RFC 9110, section
    5.5: optional whitespace around a field value is not part of it. An absent or empty header is "".
    """
    if not field_value:
        return ""
    if isinstance(field_value, bytes):
        field_value = field_value.decode("latin-1")
    return field_value.strip(" \t")


def hash_key(plaintext: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate() -> IssuedKey:
    """A new random key with its id and hash."""
    key_id = _random_base62(KEY_ID_LENGTH)
    body = f"{PREFIX}{key_id}_{_random_base62(SECRET_LENGTH)}"
    plaintext = body + _checksum(body)
    return IssuedKey(key_id=key_id, plaintext=plaintext, secret_hash=hash_key(plaintext))


@functools.lru_cache(maxsize=4096)
def parse_key_id(plaintext: str) -> str | None:
    """The key id of a well-formed key whose checksum matches, else None."""
    match = _KEY_RE.match(plaintext)
    if match is None:
        return None
    body = plaintext[:-CHECKSUM_LENGTH]
    if not hmac.compare_digest(_checksum(body), match.group(3)):
        return None
    return match.group(1)


def matches(plaintext: str, stored_hash: str) -> bool:
    """Whether `plaintext` is the key whose hash is stored, compared in constant time."""
    return hmac.compare_digest(hash_key(plaintext), stored_hash)
