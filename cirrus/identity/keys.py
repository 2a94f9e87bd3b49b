"""Token signing keys in a directory of their own, outside the database (Keystone's fernet
key repository layout), so a database dump or backup cannot sign a token.

The directory (setting `token_key_dir`, default `<data_dir>/keys/token`) is 0700 and holds one
key per file, each 0600, named by a number:

- `0` is the *staged* key: it validates tokens but signs none yet. Because it is copied to
  every API host before it is promoted, a host that starts signing with it never issues a
  token another host cannot check.
- the highest number is the *primary* key: it signs every new token.
- the numbers in between are *secondary* keys: they only validate tokens signed before the
  last rotations.

`rotate` (the `cirrus token-keys rotate` command) promotes the staged key to primary (renamed
to the next number, its modification time set to the moment of promotion), writes a new staged
key, and removes the oldest secondary keys beyond `max_active_keys` (staged and primary
included, as Keystone counts) -- but never a key whose tokens may still be valid: a secondary
key stopped signing when the next one was promoted, so it is kept until `token_ttl` seconds
after that promotion, even if that means more than `max_active_keys` keys for a while.

A file holds the URL-safe base64 of 32 random bytes. Tokens name their key by an id derived
from the key (see `key_id`), which does not change when the file is renamed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

KEY_BYTES = 32
STAGED = 0
MIN_ACTIVE_KEYS = 2  # a staged and a primary key


class KeyRepositoryError(Exception):
    """The key directory cannot be used; the message says what to do."""


def key_id(key: bytes) -> str:
    """The name a token gives its signing key: 12 characters, revealing nothing of the key."""
    digest = hmac.new(key, b"cirrus token signing key id", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


@dataclass
class KeySet:
    """The keys of a repository at one moment: index -> key bytes."""

    keys: dict[int, bytes] = field(default_factory=dict)

    @property
    def primary_index(self) -> int | None:
        signing = [i for i in self.keys if i != STAGED]
        return max(signing) if signing else None

    @property
    def primary(self) -> bytes | None:
        index = self.primary_index
        return None if index is None else self.keys[index]

    def by_id(self) -> dict[str, bytes]:
        return {key_id(key): key for key in self.keys.values()}


def _encode(key: bytes) -> bytes:
    return base64.urlsafe_b64encode(key)


def _decode(text: bytes) -> bytes | None:
    text = text.strip()
    try:
        key = base64.urlsafe_b64decode(text)
    except ValueError:
        return None
    return key if len(key) == KEY_BYTES and _encode(key) == text else None


class KeyRepository:
    def __init__(self, directory: str | os.PathLike, max_active_keys: int = 3) -> None:
        self.directory = Path(directory)
        self.max_active_keys = max(MIN_ACTIVE_KEYS, int(max_active_keys))
        self._warned: set[str] = set()

    # ---- reading
    def _key_files(self) -> Iterator[tuple[int, Path]]:
        try:
            entries = list(self.directory.iterdir())
        except FileNotFoundError:
            return
        for path in entries:
            if path.name.isdigit() and path.name == str(int(path.name)) and path.is_file():
                yield int(path.name), path

    def _warn_if_loose(self, path: Path, mode: int) -> None:
        if mode & 0o077 and str(path) not in self._warned:
            self._warned.add(str(path))
            log.warning("token signing key path %s has mode %o: other users may read it and "
                        "forge tokens; it should be %s", path, stat.S_IMODE(mode),
                        "0700" if path == self.directory else "0600")

    def load(self) -> KeySet:
        """Every valid key file; a malformed one is skipped with a warning."""
        keys: dict[int, bytes] = {}
        with contextlib.suppress(FileNotFoundError):
            self._warn_if_loose(self.directory, self.directory.stat().st_mode)
        for index, path in self._key_files():
            try:
                with open(path, "rb") as fh:
                    self._warn_if_loose(path, os.fstat(fh.fileno()).st_mode)
                    key = _decode(fh.read(256))
            except OSError as exc:
                log.warning("cannot read token signing key %s: %s", path, exc)
                continue
            if key is None:
                if str(path) + ":bad" not in self._warned:
                    self._warned.add(str(path) + ":bad")
                    log.warning("token signing key %s is not %d bytes of URL-safe base64; "
                                "ignored", path, KEY_BYTES)
                continue
            keys[index] = key
        return KeySet(keys)

    # ---- writing
    def _make_directory(self) -> None:
        if not self.directory.parent.exists():  # e.g. <data_dir>/keys: private as well
            self.directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.mkdir(exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two operators rotating at once would lose a key)."""
        self._make_directory()
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_key(self, index: int) -> None:
        """A new random key as file `index`, written whole or not at all, 0600 from birth."""
        final = self.directory / str(index)
        tmp = self.directory / f".tmp-{index}-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, _encode(os.urandom(KEY_BYTES)))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)

    def setup(self) -> bool:
        """A staged and a primary key if the directory has no key yet; whether it made them."""
        with self._locked():
            if self.load().keys:
                return False
            self._write_key(STAGED)
            self._write_key(1)
            self._fsync_directory()
            log.info("created token signing keys in %s", self.directory)
            return True

    def rotate(self, token_ttl: float) -> RotationResult:
        """Promote the staged key, stage a new one, retire keys whose tokens have expired."""
        with self._locked():
            keys = self.load()
            if not keys.keys:
                raise KeyRepositoryError(
                    f"no token signing keys in {self.directory}: run `cirrus token-keys setup` "
                    "first")
            if STAGED not in keys.keys:  # a hand-made repository: stage one, then promote it
                self._write_key(STAGED)
            new_primary = max(keys.keys) + 1
            promoted = self.directory / str(new_primary)
            os.replace(self.directory / str(STAGED), promoted)
            os.utime(promoted)  # its modification time is now the moment it began to sign
            self._write_key(STAGED)
            removed, kept = self._purge(token_ttl)
            self._fsync_directory()
        log.info("rotated token signing keys in %s: primary is now %d, removed %s",
                 self.directory, new_primary, removed or "none")
        return RotationResult(new_primary, removed, kept)

    def _purge(self, token_ttl: float) -> tuple[list[int], list[int]]:
        indexes = sorted(i for i, _ in self._key_files())
        promoted_at = {i: (self.directory / str(i)).stat().st_mtime for i in indexes}
        secondaries = [i for i in indexes if i not in (STAGED, indexes[-1])]
        excess = len(indexes) - self.max_active_keys
        removed: list[int] = []
        kept: list[int] = []
        now = time.time()
        for i in secondaries:  # oldest first
            if excess <= 0:
                break
            successor = min(j for j in indexes if j > i)
            if now - promoted_at[successor] < token_ttl:
                kept.append(i)  # tokens it signed may still be valid
                continue
            (self.directory / str(i)).unlink()
            removed.append(i)
            excess -= 1
        return removed, kept

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class RotationResult:
    primary: int
    removed: list[int]
    kept_for_live_tokens: list[int]  # over max_active_keys, kept until their tokens expire
