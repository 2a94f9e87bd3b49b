"""Signed, self-contained tokens.

A token is `<key id>.<base64url(json claims)>.<base64url(HMAC-SHA256)>`, the HMAC taken over
the key id and the claims exactly as they appear in the token. Issuing one writes nothing to
the database; validating one is a signature check plus a revocation lookup.

The signing keys live in a key directory outside the database (cirrus.identity.keys), shared
by every API process of a deployment, so a copy of the database cannot sign a token. A token
naming a key this process has not loaded makes it re-read the directory (at most every
`REVOCATION_REFRESH` seconds, so forged key ids cannot make every request read files); the
directory is also re-read every `KEY_REFRESH` seconds, so a rotation's new primary key signs,
and a key it removed stops validating, without a restart.

Parsing never raises anything but NotFound (401 at the edge): the token's shape and length
are checked first, the HMAC is verified over the raw bytes before any JSON is parsed, every
part must be the one canonical unpadded base64url encoding of its bytes (one byte string per
token), and the claims are type- and range-checked.

Revocations are read from the database at most every `REVOCATION_REFRESH` seconds per
process (and at once in the process that revoked), so another API process may accept a
revoked token for at most that long.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from cirrus.db.engine import Database
from cirrus.db.models import TokenRevocation, utcnow
from cirrus.errors import BadRequest, NotFound, ServiceUnavailable, Unauthorized
from cirrus.identity.keys import KeyRepository, KeySet, key_id

log = logging.getLogger(__name__)

REVOCATION_REFRESH = 0.5
KEY_REFRESH = 30.0
# Far above any token Cirrus issues (a few hundred bytes plus ~80 per role), far below a
# header size anyone should accept.
MAX_TOKEN_LENGTH = 8192
_TOKEN_SHAPE = re.compile(r"([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{1,8150})\.([A-Za-z0-9_-]{43})")
_MAX_TIMESTAMP = 2**33  # the year 2242: claims outside [0, this) are not Cirrus's
_MAX_STRING = 1024
_MAX_LIST = 256


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    """Decode unpadded base64url, accepting only its one canonical form (no padding, no
    other final character that decodes to the same bytes)."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64e(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def sign(key: bytes, claims: TokenClaims) -> str:
    """The token for `claims` signed with `key` (TokenProvider.issue uses the primary key)."""
    kid = key_id(key)
    payload = _b64e(json.dumps(claims.to_json(), separators=(",", ":")).encode())
    signed = f"{kid}.{payload}"
    sig = hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()
    return f"{signed}.{_b64e(sig)}"


@dataclass
class TokenClaims:
    user_id: str
    user_name: str
    user_domain_id: str
    user_domain_name: str
    methods: list[str]
    issued_at: float
    expires_at: float
    audit_id: str
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    project_domain_name: str | None = None
    roles: list[dict] = field(default_factory=list)  # [{"id", "name"}]
    password_expires_at: float | None = None  # the user's, when the token was issued

    @property
    def role_names(self) -> list[str]:
        return [r["name"] for r in self.roles]

    def to_json(self) -> dict:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, data: object) -> TokenClaims:
        """Claims from a verified token's JSON, every field's type and range checked."""
        if not isinstance(data, dict):
            raise ValueError("claims are not an object")
        known = {f for f in cls.__dataclass_fields__}
        if not set(data) <= known:
            raise ValueError("unknown claims")
        for name in ("user_id", "user_name", "user_domain_id", "user_domain_name", "audit_id"):
            _check_string(data.get(name))
        for name in ("project_id", "project_name", "project_domain_id", "project_domain_name"):
            if data.get(name) is not None:
                _check_string(data[name])
        for name in ("issued_at", "expires_at"):
            _check_timestamp(data.get(name))
        if data.get("password_expires_at") is not None:
            _check_timestamp(data["password_expires_at"])
        methods = data.get("methods")
        if not isinstance(methods, list) or len(methods) > _MAX_LIST:
            raise ValueError("methods")
        for method in methods:
            _check_string(method)
        roles = data.get("roles", [])
        if not isinstance(roles, list) or len(roles) > _MAX_LIST:
            raise ValueError("roles")
        for role in roles:
            if not isinstance(role, dict) or set(role) != {"id", "name"}:
                raise ValueError("role")
            _check_string(role["id"])
            _check_string(role["name"])
        return cls(**data)

    @property
    def issued_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.issued_at, dt.UTC).replace(tzinfo=None)

    @property
    def expires_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC).replace(tzinfo=None)

    @property
    def password_expires_datetime(self) -> dt.datetime | None:
        if self.password_expires_at is None:
            return None
        return dt.datetime.fromtimestamp(self.password_expires_at, dt.UTC).replace(tzinfo=None)


def _check_string(value: object) -> None:
    if not isinstance(value, str) or len(value) > _MAX_STRING:
        raise ValueError("not a string")


def _check_timestamp(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    if not (math.isfinite(value) and 0 <= value < _MAX_TIMESTAMP):
        raise ValueError("out of range")


class TokenProvider:
    def __init__(self, db: Database, key_dir: str | Path, ttl: int = 3600,
                 max_active_keys: int = 3) -> None:
        self.db = db
        self.ttl = ttl
        self.repository = KeyRepository(key_dir, max_active_keys)
        self._keys: dict[str, bytes] = {}
        self._primary: bytes | None = None
        self._lock = threading.Lock()
        self._revoked_audit: set[str] = set()
        self._revoked_users: dict[str, list[tuple[str | None, float]]] = {}
        self._revocations_loaded_at = 0.0
        self._keys_loaded_at = -math.inf

    # ---- keys
    def _load_keys(self) -> None:
        keys: KeySet = self.repository.load()
        self._keys = keys.by_id()
        self._primary = keys.primary
        self._keys_loaded_at = time.monotonic()

    def ensure_key(self) -> None:
        """Create the first signing keys if the key directory has none (all-in-one and
        `cirrus bootstrap` on first start; `cirrus token-keys setup` does the same)."""
        with self._lock:
            self.repository.setup()
            self._load_keys()

    def has_signing_key(self) -> bool:
        with self._lock:
            self._load_keys()
        return self._primary is not None

    def _key(self, kid: str) -> bytes | None:
        key = self._keys.get(kid)
        # An unknown key may be a new one from a rotation: re-read the directory, but not more
        # often than REVOCATION_REFRESH, so forged key ids cannot make every request read it.
        # Every KEY_REFRESH it is re-read anyway, so a key a rotation removed stops validating.
        age = time.monotonic() - self._keys_loaded_at
        if (key is None and age >= REVOCATION_REFRESH) or age >= KEY_REFRESH:
            with self._lock:
                self._load_keys()
            key = self._keys.get(kid)
        return key

    def _signing_key(self) -> bytes:
        if self._primary is None or time.monotonic() - self._keys_loaded_at >= KEY_REFRESH:
            with self._lock:
                self._load_keys()
        if self._primary is None:
            log.error("no token signing key in %s: run `cirrus token-keys setup` (or `cirrus "
                      "bootstrap`) and give every API process the same directory",
                      self.repository.directory)
            raise ServiceUnavailable("The identity service has no token signing key.")
        return self._primary

    # ---- issue / validate
    def issue(self, claims: TokenClaims) -> str:
        token = sign(self._signing_key(), claims)
        if len(token) > MAX_TOKEN_LENGTH or len(claims.roles) > _MAX_LIST:
            raise BadRequest("The user holds too many roles on this scope to fit in a token.")
        return token

    def new_claims(self, **kwargs: Any) -> TokenClaims:
        now = time.time()
        return TokenClaims(issued_at=now, expires_at=now + self.ttl,
                           audit_id=_b64e(secrets.token_bytes(16)), **kwargs)

    def _verified_claims(self, token: object) -> TokenClaims:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise ValueError("not a token")
        shape = _TOKEN_SHAPE.fullmatch(token)
        if shape is None:
            raise ValueError("not a token")
        kid, payload, sig = shape.groups()
        key = self._key(kid)
        if key is None:
            raise ValueError("unknown signing key")
        signed = token[: len(kid) + 1 + len(payload)]
        expected = _b64e(hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest())
        # Comparing the encodings, not the bytes: only the canonical signature matches.
        if not hmac.compare_digest(expected, sig):
            raise ValueError("bad signature")
        return TokenClaims.from_json(json.loads(_b64d(payload)))

    def validate(self, token: str) -> TokenClaims:
        """Return the claims of a valid token; raise NotFound for a bad, expired or revoked one
        (and for anything else a client may send)."""
        try:
            claims = self._verified_claims(token)
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError,
                UnicodeError, binascii.Error) as exc:
            raise NotFound("The token is invalid.") from exc
        if claims.expires_at <= time.time():
            raise NotFound("The token has expired.")
        if self._is_revoked(claims):
            raise NotFound("The token has been revoked.")
        return claims

    def authenticate(self, token: str | None) -> TokenClaims:
        if not token:
            raise Unauthorized("The request you have made requires authentication.")
        try:
            return self.validate(token)
        except NotFound as exc:
            raise Unauthorized(exc.message) from exc

    # ---- revocation
    def _refresh_revocations(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._revocations_loaded_at < REVOCATION_REFRESH:
            return
        with self.db.reader() as s:
            rows = s.execute(
                select(TokenRevocation.audit_id, TokenRevocation.user_id,
                       TokenRevocation.project_id, TokenRevocation.issued_before)
                .where(TokenRevocation.expires_at > utcnow())
            ).all()
        audit: set[str] = set()
        users: dict[str, list[tuple[str | None, float]]] = {}
        for row in rows:
            if row.audit_id:
                audit.add(row.audit_id)
            elif row.user_id:
                before = row.issued_before.replace(tzinfo=dt.UTC).timestamp()
                users.setdefault(row.user_id, []).append((row.project_id, before))
        self._revoked_audit, self._revoked_users = audit, users
        self._revocations_loaded_at = now

    def _is_revoked(self, claims: TokenClaims) -> bool:
        self._refresh_revocations()
        if claims.audit_id in self._revoked_audit:
            return True
        for project_id, before in self._revoked_users.get(claims.user_id, ()):
            # Whole seconds: MariaDB's DATETIME keeps no fractions (Keystone does the same).
            if (project_id is None or project_id == claims.project_id) and int(
                claims.issued_at
            ) <= int(before):
                return True
        return False

    def revoke(self, claims: TokenClaims) -> None:
        with self.db.writer() as s:
            s.add(TokenRevocation(audit_id=claims.audit_id, issued_before=utcnow(),
                                  expires_at=claims.expires_datetime))
        self._refresh_revocations(force=True)

    def revoke_user(self, user_id: str, project_id: str | None = None) -> None:
        """Revoke every token of a user (optionally only those scoped to one project)."""
        now = utcnow()
        with self.db.writer() as s:
            s.add(TokenRevocation(user_id=user_id, project_id=project_id, issued_before=now,
                                  expires_at=now + dt.timedelta(seconds=self.ttl)))
            s.execute(delete(TokenRevocation).where(TokenRevocation.expires_at < now))
        self._refresh_revocations(force=True)
