"""The identity secrets key: made private on first use, rotated by putting a new key first,
secrets hashed one way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cirrus.identity import secrets


@dataclass
class S:
    data_dir: Path
    credential_key_file: str = ""


def test_key_made_private_and_outside_the_token(tmp_path: Path) -> None:
    settings = S(tmp_path)
    token = secrets.seal(settings, "the blob")
    key = tmp_path / "keys" / "credentials.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert "the blob" not in token
    assert secrets.open_sealed(settings, token) == "the blob"


def test_rotation_new_key_first_old_blobs_still_open(tmp_path: Path) -> None:
    settings = S(tmp_path, credential_key_file=str(tmp_path / "k"))
    old = secrets.seal(settings, "old")
    old_hash = secrets.key_hash(settings)
    path = tmp_path / "k"
    path.write_text(Fernet.generate_key().decode() + "\n" + path.read_text())
    assert secrets.open_sealed(settings, old) == "old"
    assert secrets.key_hash(settings) != old_hash
    new = secrets.seal(settings, "new")
    path.write_text(path.read_text().splitlines()[0] + "\n")  # the old key removed
    assert secrets.open_sealed(settings, new) == "new"
    with pytest.raises(secrets.SecretsError, match=str(path)):
        secrets.open_sealed(settings, old)


def test_a_bad_key_line_is_named_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("# comment\nnot-a-key\n")
    with pytest.raises(secrets.SecretsError, match="line 2") as info:
        secrets.seal(S(tmp_path, credential_key_file=str(path)), "x")
    assert "not-a-key" not in str(info.value)


def test_hashed_secrets_check_one_way() -> None:
    stored = secrets.hash_secret("s3cret")
    assert "s3cret" not in stored
    assert secrets.check_secret("s3cret", stored)
    assert not secrets.check_secret("other", stored)
    assert not secrets.check_secret("s3cret", "garbage")
    assert secrets.hash_secret("s3cret") != stored  # salted
