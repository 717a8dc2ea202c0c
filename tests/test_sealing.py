"""SecretBox: secrets sealed with Fernet, rotation with several keys, the SQLite key file, clear refusals."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from callstats.config import Settings
from callstats.errors import ApiError, ServiceUnavailable
from callstats.sealing import (
    KEY_FILE_SUFFIX,
    NoSecretKey,
    SecretBox,
    UnreadableSecret,
    key_file_path,
    secret_box,
)

SECRET = "AC-token-0123456789abcdef0123456789abcdef"


def new_key() -> str:
    """A fresh Fernet key, as CALLSTATS_SECRET_KEY holds it."""
    return Fernet.generate_key().decode()


def test_a_sealed_secret_opens_and_is_not_in_the_token() -> None:
    """seal gives a token free of the secret, different each time; unseal gives the secret back."""
    key = new_key()
    box = SecretBox([key])
    first, second = box.seal(SECRET), box.seal(SECRET)
    assert SECRET not in first and first != second
    assert box.unseal(first) == SECRET == box.unseal(second)
    assert SecretBox([key]).unseal(first) == SECRET  # a new process with the same key


def test_non_ascii_secrets_round_trip() -> None:
    """Any text survives the round trip."""
    box = SecretBox([new_key()])
    assert box.unseal(box.seal("clé-秘密-🔑")) == "clé-秘密-🔑"


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    """Keys "new,old": a token of the old key opens; a new token opens with the new key alone, not the old."""
    old, new = new_key(), new_key()
    old_token = SecretBox([old]).seal(SECRET)
    rotated = SecretBox([new, old])
    assert rotated.unseal(old_token) == SECRET
    fresh = rotated.seal("fresh")
    assert SecretBox([new]).unseal(fresh) == "fresh"
    with pytest.raises(UnreadableSecret):
        SecretBox([old]).unseal(fresh)


@pytest.mark.parametrize("token", ["", "not a token", "gAAAAAB" + "A" * 80, "\u00e9t\u00e9"])
def test_a_token_no_key_opens_is_a_clear_503(token: str) -> None:
    """A foreign key's token, garbage or nothing: UnreadableSecret, a 503 saying what to put back."""
    foreign = SecretBox([new_key()]).seal(SECRET)
    box = SecretBox([new_key()])
    for sealed in (foreign, token):
        with pytest.raises(UnreadableSecret) as refused:
            box.unseal(sealed)
        error = refused.value
        assert isinstance(error, ServiceUnavailable) and error.status == 503
        assert "CALLSTATS_SECRET_KEY" in error.message and error.__cause__ is None


def test_without_any_key_sealing_is_refused_with_how_to_set_one() -> None:
    """No key and no key file (PostgreSQL): NoSecretKey, naming the setting and the command making a key."""
    box = SecretBox()
    with pytest.raises(NoSecretKey) as sealing:
        box.seal(SECRET)
    with pytest.raises(NoSecretKey) as opening:
        box.unseal("gAAAA")
    for refused in (sealing.value, opening.value):
        assert isinstance(refused, ApiError) and refused.status == 503
        assert "CALLSTATS_SECRET_KEY" in refused.message
        assert "Fernet.generate_key()" in refused.message


def test_the_key_file_is_made_private_on_first_seal_and_reused(tmp_path: Path) -> None:
    """The first seal writes one key, mode 0600; another box on the same file opens with it; the file
    stays as it was."""
    path = tmp_path / ("db.sqlite" + KEY_FILE_SUFFIX)
    box = SecretBox(key_file=path)
    assert not path.exists()
    token = box.seal(SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert SecretBox(key_file=path).unseal(token) == SECRET
    assert SecretBox([content.strip()]).unseal(token) == SECRET
    SecretBox(key_file=path).seal("again")
    assert path.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_boxes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """Many boxes sealing at once on a fresh file: every token opens with the one key left in the file."""
    path = tmp_path / ("db" + KEY_FILE_SUFFIX)
    tokens: list[str] = []
    start = threading.Barrier(8)

    def seal() -> None:
        start.wait()
        tokens.append(SecretBox(key_file=path).seal(SECRET))

    threads = [threading.Thread(target=seal) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = SecretBox(key_file=path)
    assert len(tokens) == 8 and [reader.unseal(token) for token in tokens] == [SECRET] * 8


def test_a_missing_key_file_is_not_made_to_open_a_token(tmp_path: Path) -> None:
    """unseal with no key file: UnreadableSecret saying the file is missing, and no file is made."""
    path = tmp_path / ("db" + KEY_FILE_SUFFIX)
    with pytest.raises(UnreadableSecret, match="missing"):
        SecretBox(key_file=path).unseal(SecretBox([new_key()]).seal(SECRET))
    assert not path.exists()


def test_a_key_file_without_a_key_is_refused(tmp_path: Path) -> None:
    """A damaged key file is a NoSecretKey naming the file (not its content); it is left alone."""
    path = tmp_path / ("db" + KEY_FILE_SUFFIX)
    path.write_text("not-a-fernet-key\n")
    with pytest.raises(NoSecretKey, match="holds no usable Fernet key") as refused:
        SecretBox(key_file=path).seal(SECRET)
    assert "not-a-fernet-key" not in refused.value.message
    assert path.read_text() == "not-a-fernet-key\n"


def test_an_unwritable_directory_is_a_clear_refusal(tmp_path: Path) -> None:
    """No key file can be made (no such directory): NoSecretKey, pointing at CALLSTATS_SECRET_KEY."""
    with pytest.raises(NoSecretKey, match="CALLSTATS_SECRET_KEY"):
        SecretBox(key_file=tmp_path / "gone" / ("db" + KEY_FILE_SUFFIX)).seal(SECRET)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/callstats/callstats.db", "/var/lib/callstats/callstats.db.secret-key"),
        ("postgresql://u:p@db/callstats", None),
        ("postgresql+psycopg://u:p@db/callstats", None),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
    ],
)
def test_the_key_file_is_beside_a_sqlite_file_only(url: str, expected: str | None) -> None:
    """`<database path>.secret-key` for an SQLite file; none for PostgreSQL or an in-memory database."""
    found = key_file_path(url)
    assert (str(found) if found else None) == expected


def test_a_relative_sqlite_path_gives_an_absolute_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sqlite:///./callstats.db` (the default): the key file is fixed when the box is built, so a later
    change of directory does not move it."""
    monkeypatch.chdir(tmp_path)
    assert key_file_path("sqlite:///./callstats.db") == tmp_path / "callstats.db.secret-key"


def test_the_apps_box_follows_the_settings(tmp_path: Path) -> None:
    """secret_box: the setting's keys when set (no key file), else the SQLite key file, else none."""
    key = new_key()
    url = f"sqlite:///{tmp_path / 'callstats.db'}"
    keyed = secret_box(Settings(database_url=url, secret_key=SecretStr(f" {new_key()} , {key} ")))
    assert keyed.key_file is None
    old_token = SecretBox([key]).seal(SECRET)
    assert keyed.unseal(old_token) == SECRET
    filed = secret_box(Settings(database_url=url, secret_key=None))
    assert filed.key_file == tmp_path / "callstats.db.secret-key"
    assert not filed.key_file.exists()
    assert secret_box(Settings(database_url="postgresql://u@db/x", secret_key=None)).key_file is None
