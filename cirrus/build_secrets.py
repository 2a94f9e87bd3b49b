"""Build secrets (a server's admin password and injected files) sealed with a key that is not
in the database, so that no database file, WAL, backup or broker message store holds them in
plain text (docs/security.md, "Build secrets").

The API seals them into one Fernet token (AES-128-CBC + HMAC-SHA256) bound to the instance's
uuid: the request spec in the database and the spawn message on the bus carry only the token;
the agent's driver opens it when it writes the config drive. The conductor erases the token
once the build ends (built, failed or deleted), as before.

The key file (`build_secrets_key_file`, default `<data_dir>/keys/build-secrets.key`) holds
one Fernet key a line, `#` comments allowed: the first seals, every one opens (MultiFernet),
so a key is rotated by adding the new one everywhere, then putting it first, then removing
the old one once no build sealed with it is in flight (docs/deployment.md). It is read again
when it changes, without a restart. The first API to seal creates it (0600, in a 0700
directory) if it is missing; an agent never does: it needs the API's key and says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)

# The request spec's key for the sealed token (InstanceSpec.config_drive.build_secrets).
SEALED = "build_secrets"
KEY_FILE_NAME = Path("keys") / "build-secrets.key"


class BuildSecretsError(Exception):
    """The secrets cannot be sealed or opened (no key, wrong key, not this instance's). The
    message names the key file: for the operator's log, not for a server's fault."""


# What a server's fault says instead (its owner sees it; the host's log has the details).
UNOPENABLE = ("the host could not open the server's admin password and files: its build "
              "secrets key is not the API's (see the agent's log)")


@dataclass(frozen=True)
class BuildSecrets:
    # Not in repr: a log line or a traceback showing one must not show them.
    admin_pass: str | None = field(default=None, repr=False)
    injected_files: list[tuple[str, bytes]] = field(default_factory=list, repr=False)

    def __bool__(self) -> bool:
        return bool(self.admin_pass or self.injected_files)


class KeySettings(Protocol):
    """What the key's location is read from (cirrus.config.Settings is one)."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def build_secrets_key_file(self) -> str: ...


def key_file(settings: KeySettings) -> Path:
    """Where the key is: `build_secrets_key_file`, or `<data_dir>/keys/build-secrets.key`."""
    configured = getattr(settings, "build_secrets_key_file", "")
    return Path(configured) if configured else Path(settings.data_dir) / KEY_FILE_NAME


def ensure_key(settings: KeySettings) -> Path:
    """The key file, made (one new key, 0600 in a 0700 directory) if it does not exist."""
    return create_key_file(key_file(settings), "build secrets")


def create_key_file(path: Path, what: str) -> Path:
    """`path`, made with one new Fernet key (0600, in a 0700 directory) unless it exists. Two
    processes starting together make one key: the file appears whole, and the loser of the
    race uses the winner's. Shared with identity/secrets.py."""
    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"# Cirrus {what} keys (docs/security.md): the first seals, all open\n")
            fh.write(Fernet.generate_key().decode() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another process has just written
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_keys(path: Path) -> list[bytes]:
    """The keys in `path`, first the sealing one; BuildSecretsError if there are none or one
    is not a Fernet key (the message names the file and line, never a key)."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise BuildSecretsError(
            f"build secrets key file {path} is missing: every API and agent host of a "
            "deployment needs the same one (docs/deployment.md)") from exc
    return parse_keys(path, text, "build secrets", BuildSecretsError)


def parse_keys(path: Path, text: str, what: str, error: type[Exception]) -> list[bytes]:
    """The Fernet keys of a key file's text, first the sealing one; `error` if there are none
    or a line is not a key (naming the file and line, never a key). Shared with
    identity/secrets.py."""
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            Fernet(line.encode())
        except (ValueError, binascii.Error) as exc:
            raise error(f"{path}, line {number}: not a Fernet key (32 bytes in "
                        "url-safe base64)") from exc
        keys.append(line.encode())
    if not keys:
        raise error(f"{what} key file {path} holds no key")
    return keys


_cache: dict[Path, tuple[tuple[int, int], MultiFernet]] = {}
_cache_lock = threading.Lock()


def _fernet(path: Path) -> MultiFernet:
    """The keys of `path`, read again whenever the file changed (rotation needs no restart)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    stamp = (st.st_mtime_ns, st.st_size) if st else (0, 0)
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == stamp and st is not None:
            return cached[1]
    fernet = MultiFernet([Fernet(key) for key in read_keys(path)])
    if st is not None and st.st_mode & 0o077:
        log.warning("build secrets key file %s is mode %04o: make it 0600 (readable by the "
                    "service user only)", path, st.st_mode & 0o777)
    with _cache_lock:
        _cache[path] = (stamp, fernet)
    return fernet


def seal(settings: KeySettings, uuid: str, secrets: BuildSecrets) -> str | None:
    """The token for instance `uuid`'s secrets (None when there are none); makes the key file
    on first use (the API's side)."""
    if not secrets:
        return None
    plain: dict[str, object] = {"uuid": uuid}
    if secrets.admin_pass:
        plain["admin_pass"] = secrets.admin_pass
    if secrets.injected_files:
        plain["injected_files"] = [[path, base64.b64encode(data).decode()]
                                   for path, data in secrets.injected_files]
    fernet = _fernet(ensure_key(settings))
    return fernet.encrypt(json.dumps(plain).encode()).decode()


def open_sealed(settings: KeySettings, uuid: str, token: str) -> BuildSecrets:
    """The secrets in `token`, which must have been sealed for instance `uuid` (a token
    copied to another instance does not open). The agent's side: never makes a key."""
    path = key_file(settings)
    if not isinstance(token, str):
        raise BuildSecretsError(f"the build secrets of instance {uuid} are not a token")
    try:
        plain = json.loads(_fernet(path).decrypt(token.encode()))
    except InvalidToken as exc:
        raise BuildSecretsError(
            f"the build secrets of instance {uuid} do not open with the keys in {path}: the "
            "API hosts seal with a key this host lacks (docs/deployment.md)") from exc
    if not isinstance(plain, dict) or plain.get("uuid") != uuid:
        raise BuildSecretsError(f"the build secrets given to instance {uuid} were sealed for "
                                "another instance")
    return BuildSecrets(
        admin_pass=plain.get("admin_pass"),
        injected_files=[(path_, base64.b64decode(content))
                        for path_, content in plain.get("injected_files") or []])
