"""Identity secrets (credential blobs, sensitive domain-config options) sealed with a key that
is not in the database (docs/security.md, "Identity secrets"), as build secrets are.

The key file (`credential_key_file`, default `<data_dir>/keys/credentials.key`) holds one
Fernet key a line, `#` comments allowed: the first seals, every one opens (MultiFernet), so a
key is rotated by adding the new one and putting it first; keep the old ones (a blob sealed
with a removed key no longer opens; each row's `key_hash` says which key sealed it). The file
is read again when it changes.
The first API to seal makes it (0600, in a 0700 directory).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cirrus.build_secrets import create_key_file, parse_keys

log = logging.getLogger(__name__)

KEY_FILE_NAME = Path("keys") / "credentials.key"


class SecretsError(Exception):
    """A secret cannot be sealed or opened (no key, a wrong key): names the file, never a key."""


class KeySettings(Protocol):
    @property
    def data_dir(self) -> Path: ...

    @property
    def credential_key_file(self) -> str: ...


def key_file(settings: KeySettings) -> Path:
    configured = getattr(settings, "credential_key_file", "")
    return Path(configured) if configured else Path(settings.data_dir) / KEY_FILE_NAME


def ensure_key(settings: KeySettings) -> Path:
    """The key file, made (one new key, 0600 in a 0700 directory) if it does not exist."""
    return create_key_file(key_file(settings), "identity secrets")


def _read_keys(path: Path) -> list[bytes]:
    return parse_keys(path, path.read_text(), "identity secrets", SecretsError)


_cache: dict[Path, tuple[tuple[int, int], MultiFernet, bytes]] = {}
_cache_lock = threading.Lock()


def _fernet(settings: KeySettings) -> tuple[MultiFernet, bytes]:
    """The keys (read again whenever the file changed) and the sealing key."""
    path = ensure_key(settings)
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1], cached[2]
    keys = _read_keys(path)
    if st.st_mode & 0o077:
        log.warning("identity secrets key file %s is mode %04o: make it 0600", path,
                    st.st_mode & 0o777)
    fernet = MultiFernet([Fernet(k) for k in keys])
    with _cache_lock:
        _cache[path] = (stamp, fernet, keys[0])
    return fernet, keys[0]


def seal(settings: KeySettings, plain: str) -> str:
    return _fernet(settings)[0].encrypt(plain.encode()).decode()


def open_sealed(settings: KeySettings, token: str) -> str:
    try:
        return _fernet(settings)[0].decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretsError(f"an identity secret does not open with the keys in "
                           f"{key_file(settings)}") from exc


def key_hash(settings: KeySettings) -> str:
    """Which key sealed (Keystone's credential key_hash): a digest, never the key."""
    return hashlib.sha256(_fernet(settings)[1]).hexdigest()


def hash_secret(secret: str) -> str:
    """A one-way hash of a random secret (an OAuth1 consumer's): salted SHA-256 is enough for
    32 random bytes, no password stretching needed."""
    salt = os.urandom(16).hex()
    digest = hashlib.sha256((salt + secret).encode()).hexdigest()
    return f"sha256${salt}${digest}"


def check_secret(secret: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    return hmac.compare_digest(hashlib.sha256((salt + secret).encode()).hexdigest(), digest)
