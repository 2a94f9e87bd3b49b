"""Password rules and lockout: Keystone's `[security_compliance]` options and its
`[identity] max_password_length`, with Keystone's semantics and messages.

- `max_password_length` (4096): a longer new password is refused with 400; a longer password
  at login can match nothing stored, so it is refused (401) without being hashed.
- `lockout_failure_attempts` / `lockout_duration`: after that many failed logins in a row
  the user gets 401 "The account is locked for user: <id>." (even with the right password)
  until `lockout_duration` seconds after the last failure, or until an admin sets
  `enabled: true` on the user. A successful login resets the count.
- `password_expires_days`: a password set (by anyone) expires that many days later; an
  expired password gets 401 "The password is expired and needs to be changed for user: <id>."
  at login and can still be used to change it (POST /v3/users/{id}/password).
- `change_password_upon_first_use`: a password given at user creation or reset by an admin
  is expired at once, so the user must change it before getting a token (PCI-DSS 8.2.6).
- `password_regex` / `password_regex_description`: a new password must match (re.match);
  400 "The password does not match the requirements: <description>."
- `unique_last_password_count`: a self-service change may not reuse the current password or
  the ones before it, this many in all (an admin reset is not checked, as in Keystone).
- `minimum_password_age`: days after a self-service change before the next one.

Per-user options exempt a user (Keystone's names): `ignore_lockout_failure_attempts`,
`ignore_password_expiry`, `ignore_change_password_upon_first_use`, and `lock_password`
forbids self-service changes. The bootstrap admin gets the three `ignore_*` options, so a
cloud cannot lock out or expire its own administrator.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from dataclasses import dataclass

from sqlalchemy import and_, case, func, update
from sqlalchemy.orm import Session

from cirrus.db.models import User, utcnow
from cirrus.errors import BadRequest, Unauthorized

log = logging.getLogger(__name__)

IGNORE_LOCKOUT = "ignore_lockout_failure_attempts"
IGNORE_EXPIRY = "ignore_password_expiry"
IGNORE_FIRST_USE = "ignore_change_password_upon_first_use"
LOCK_PASSWORD = "lock_password"
# The options Keystone knows for a user; any other is refused with 400.
BOOLEAN_OPTIONS = (IGNORE_FIRST_USE, IGNORE_EXPIRY, IGNORE_LOCKOUT, LOCK_PASSWORD,
                   "ignore_user_inactivity", "multi_factor_auth_enabled")
BOOTSTRAP_ADMIN_OPTIONS = {IGNORE_LOCKOUT: True, IGNORE_EXPIRY: True, IGNORE_FIRST_USE: True}


@dataclass(frozen=True)
class PasswordPolicy:
    max_password_length: int = 4096
    lockout_failure_attempts: int = 0
    lockout_duration: int = 1800
    password_expires_days: int = 0
    password_regex: str = ""
    password_regex_description: str = ""
    unique_last_password_count: int = 0
    minimum_password_age: int = 0
    change_password_upon_first_use: bool = False

    @classmethod
    def from_settings(cls, settings: object) -> PasswordPolicy:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})

    # ---- new passwords
    def check_new(self, password: object) -> None:
        """Length and complexity of a password being set (400 when refused)."""
        if not isinstance(password, str):
            raise BadRequest("Password validation error: Password must be a string type.")
        if len(password) > self.max_password_length:
            raise BadRequest(f"The password length must be less than or equal to "
                             f"{self.max_password_length}. The server could not comply with "
                             f"the request because the password is invalid.")
        if self.password_regex:
            pattern = _compiled(self.password_regex)
            if pattern is None:
                raise BadRequest("Password validation error: Unable to validate password due "
                                 "to invalid configuration.")
            if not pattern.match(password):
                raise BadRequest(f"The password does not match the requirements: "
                                 f"{self.password_regex_description}.")

    def expires_at(self, user: User, now: dt.datetime, *, by_admin: bool) -> dt.datetime | None:
        """When a password set now expires: at once when it must be changed on first use,
        else after password_expires_days, else never."""
        options = user_options(user)
        if by_admin and self.change_password_upon_first_use and not options.get(IGNORE_FIRST_USE):
            return now
        if self.password_expires_days and not options.get(IGNORE_EXPIRY):
            return (now + dt.timedelta(days=self.password_expires_days)).replace(microsecond=0)
        return None

    def history_size(self) -> int:
        """How many earlier hashes to keep: the count includes the current password."""
        return max(self.unique_last_password_count - 1, 0)

    # ---- logins
    def lockout_applies(self, user: User) -> bool:
        return self.lockout_failure_attempts > 0 and not user_options(user).get(IGNORE_LOCKOUT)

    def is_locked(self, user: User, now: dt.datetime) -> bool:
        if not self.lockout_applies(user):
            return False
        if (user.failed_auth_count or 0) < self.lockout_failure_attempts:
            return False
        if not self.lockout_duration or user.failed_auth_at is None:
            return True
        return user.failed_auth_at + dt.timedelta(seconds=self.lockout_duration) > now

    def record_failure(self, s: Session, user_id: str) -> None:
        """One more failed login, counted in the database (atomic across API processes); a
        lockout that has run out starts the count again."""
        now = utcnow()
        count = func.coalesce(User.failed_auth_count, 0)
        lock_over = and_(count >= self.lockout_failure_attempts,
                         User.failed_auth_at.is_not(None),
                         User.failed_auth_at <= now - dt.timedelta(seconds=self.lockout_duration))
        new_count = (case((lock_over, 1), else_=count + 1) if self.lockout_duration
                     else count + 1)
        s.execute(update(User).where(User.id == user_id)
                  .values(failed_auth_count=new_count, failed_auth_at=now))


def user_options(user: User) -> dict:
    return (user.extra or {}).get("options") or {}


def password_expired(user: User, now: dt.datetime) -> bool:
    return user.password_expires_at is not None and now >= user.password_expires_at


def locked_error(user_id: str) -> Unauthorized:
    return Unauthorized(f"The account is locked for user: {user_id}.")


def expired_error(user_id: str) -> Unauthorized:
    return Unauthorized(f"The password is expired and needs to be changed for user: {user_id}.")


@functools.lru_cache(maxsize=8)
def _compiled(pattern: str) -> re.Pattern | None:
    try:
        return re.compile(pattern)
    except re.error:
        log.error("Unable to validate password due to invalid regular expression - "
                  "password_regex: %s", pattern)
        return None
