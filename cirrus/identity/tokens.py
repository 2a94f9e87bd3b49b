"""Signed, self-contained tokens.

A token is `<base64url(json claims)>.<base64url(HMAC-SHA256)>`. Issuing one writes nothing
to the database; validating one is a signature check plus a revocation lookup. The signing
keys live in the database so that every API process accepts every other's tokens.
Revocations are read from the database at most every `REVOCATION_REFRESH` seconds per
process (and at once in the process that revoked), so another API process may accept a
revoked token for at most that long.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from cirrus.db.engine import Database
from cirrus.db.models import SigningKey, TokenRevocation, utcnow
from cirrus.errors import NotFound, Unauthorized

REVOCATION_REFRESH = 0.5


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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

    @property
    def role_names(self) -> list[str]:
        return [r["name"] for r in self.roles]

    def to_json(self) -> dict:
        return self.__dict__.copy()

    @property
    def issued_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.issued_at, dt.UTC).replace(tzinfo=None)

    @property
    def expires_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC).replace(tzinfo=None)


class TokenProvider:
    def __init__(self, db: Database, ttl: int = 3600) -> None:
        self.db = db
        self.ttl = ttl
        self._keys: dict[int, bytes] = {}
        self._active_key_id: int | None = None
        self._lock = threading.Lock()
        self._revoked_audit: set[str] = set()
        self._revoked_users: dict[str, list[tuple[str | None, float]]] = {}
        self._revocations_loaded_at = 0.0
        self._keys_loaded_at = 0.0

    # ---- keys
    def _load_keys(self) -> None:
        with self.db.reader() as s:
            rows = s.execute(select(SigningKey.id, SigningKey.key, SigningKey.active)).all()
        self._keys = {row.id: row.key for row in rows}
        active = [row.id for row in rows if row.active]
        self._active_key_id = max(active) if active else None
        self._keys_loaded_at = time.monotonic()

    def ensure_key(self) -> None:
        """Create the first signing key if the database has none."""
        with self._lock:
            self._load_keys()
            if self._active_key_id is None:
                with self.db.writer() as s:
                    s.add(SigningKey(key=os.urandom(32), active=True))
                self._load_keys()

    def _key(self, key_id: int) -> bytes | None:
        key = self._keys.get(key_id)
        # An unknown key may be a new one from another process: reload, but not more often
        # than REVOCATION_REFRESH, so forged key ids cannot send every request to the database.
        if key is None and time.monotonic() - self._keys_loaded_at >= REVOCATION_REFRESH:
            with self._lock:
                self._load_keys()
            key = self._keys.get(key_id)
        return key

    # ---- issue / validate
    def issue(self, claims: TokenClaims) -> str:
        if self._active_key_id is None:
            self.ensure_key()
        body = json.dumps({"k": self._active_key_id, **claims.to_json()},
                          separators=(",", ":")).encode()
        payload = _b64e(body)
        sig = hmac.new(self._keys[self._active_key_id], payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64e(sig)}"

    def new_claims(self, **kwargs: object) -> TokenClaims:
        now = time.time()
        return TokenClaims(issued_at=now, expires_at=now + self.ttl,
                           audit_id=_b64e(secrets.token_bytes(16)), **kwargs)

    def validate(self, token: str) -> TokenClaims:
        """Return the claims of a valid token; raise NotFound for a bad, expired or revoked one."""
        try:
            payload, sig = token.split(".", 1)
            data = json.loads(_b64d(payload))
            if not isinstance(data, dict):
                raise ValueError("claims are not an object")
            key = self._key(int(data.pop("k")))
            if key is None:
                raise ValueError("unknown signing key")
            expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _b64d(sig)):
                raise ValueError("bad signature")
            claims = TokenClaims(**data)
        except (ValueError, TypeError, KeyError) as exc:
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
