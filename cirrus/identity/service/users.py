"""Users: queries, creation, updates, password changes and deletion."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.db.models import InheritedRoleAssignment, RoleAssignment, User, utcnow
from cirrus.errors import BadRequest, NotFound
from cirrus.identity.compliance import LOCK_PASSWORD, PasswordPolicy, user_options
from cirrus.identity.passwords import hash_password, verify_password
from cirrus.identity.service.auth import _check_password
from cirrus.identity.service.common import (
    DEFAULT_POLICY,
    Revocation,
    _conflict,
    _flush,
    _merge_extra,
    new_id,
)
from cirrus.identity.service.domains import get_domain


def _set_password(user: User, password: str | None, policy: PasswordPolicy, *,
                  by_admin: bool) -> None:
    """Set (or, with None, remove) a user's password: history, age and expiry with it."""
    now = utcnow()
    keep = policy.history_size()
    history = list(user.password_history or []) if keep else []
    if keep and user.password_hash:
        history.append(user.password_hash)
    user.password_history = history[-keep:] if keep else []
    user.password_hash = hash_password(password) if password else None
    user.password_created_at = now if password else None
    user.password_self_service = not by_admin
    user.password_expires_at = (policy.expires_at(user, now, by_admin=by_admin)
                                if password else None)


def get_user(s: Session, user_id: str) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise NotFound(f"Could not find user: {user_id}.")
    return user


def list_users(s: Session, *, name: str | None = None, domain_id: str | None = None,
               enabled: bool | None = None, only_ids: Iterable[str] | None = None) -> list[User]:
    query = select(User).order_by(User.name, User.id)
    if only_ids is not None:
        query = query.where(User.id.in_(list(only_ids)))
    if name is not None:
        query = query.where(User.name == name)
    if domain_id is not None:
        query = query.where(User.domain_id == domain_id)
    if enabled is not None:
        query = query.where(User.enabled == enabled)
    return list(s.scalars(query))


def _merge_user_extra(current: dict | None, fields: dict) -> dict:
    """As _merge_extra, but options are merged one by one (null removes one), as Keystone's."""
    merged = _merge_extra(current, {k: v for k, v in fields.items() if k != "options"})
    if "options" in fields:
        options = {**(current or {}).get("options", {}), **(fields["options"] or {})}
        merged["options"] = {k: v for k, v in options.items() if v is not None}
    return merged


def create_user(s: Session, fields: dict, default_domain_id: str,
                policy: PasswordPolicy = DEFAULT_POLICY) -> User:
    domain_id = fields.get("domain_id") or default_domain_id
    get_domain(s, domain_id)
    name = fields["name"]
    duplicate = f"Duplicate entry found with name {name} at domain ID {domain_id}"
    if s.scalar(select(User.id).where(User.name == name, User.domain_id == domain_id)) is not None:
        raise _conflict("user", duplicate)
    password = fields.get("password")
    if password is not None:
        policy.check_new(password)
    user = User(id=new_id(), name=name, domain_id=domain_id, enabled=fields.get("enabled", True),
                description=fields.get("description") or "", email=fields.get("email"),
                default_project_id=fields.get("default_project_id"),
                extra=_merge_user_extra({"options": {}}, fields), password_history=[],
                failed_auth_count=0)
    _set_password(user, password, policy, by_admin=True)
    s.add(user)
    _flush(s, "user", duplicate)
    return user


def update_user(s: Session, user_id: str, fields: dict,
                policy: PasswordPolicy = DEFAULT_POLICY) -> tuple[User, list[Revocation]]:
    """An administrator's update. A password set here is a reset: checked for length and
    complexity, not against the history or the minimum age (as Keystone)."""
    user = get_user(s, user_id)
    if fields.get("password") is not None:
        policy.check_new(fields["password"])
    if "domain_id" in fields and fields["domain_id"] != user.domain_id:
        raise BadRequest("Update of `domain_id` is not allowed.")
    revoke = False
    name = fields.get("name", user.name)
    duplicate = f"Duplicate entry found with name {name} at domain ID {user.domain_id}"
    if name != user.name:
        if s.scalar(select(User.id).where(User.name == name,
                                          User.domain_id == user.domain_id)) is not None:
            raise _conflict("user", duplicate)
        user.name = name
    user.extra = _merge_user_extra(user.extra, fields)  # options first: they rule the expiry
    if "password" in fields:
        _set_password(user, fields["password"], policy, by_admin=True)
        revoke = True
    if "enabled" in fields:
        revoke = revoke or (user.enabled and not fields["enabled"])
        if fields["enabled"]:
            user.failed_auth_count = 0  # enabling a user lifts a lockout (Keystone)
        user.enabled = fields["enabled"]
    if "description" in fields:
        user.description = fields["description"] or ""
    if "email" in fields:
        user.email = fields["email"]
    if "default_project_id" in fields:
        user.default_project_id = fields["default_project_id"]
    _flush(s, "user", duplicate)
    return user, [(user.id, None)] if revoke else []


def change_password(s: Session, user_id: str, original_password: str, password: str,
                    policy: PasswordPolicy = DEFAULT_POLICY) -> list[Revocation]:
    """A user changing their own password: the original one authenticates the request (and
    may have expired: that is how an expired password gets changed)."""
    if not password:
        raise BadRequest("Invalid input for field/attribute user/password. A new password "
                         "may not be empty.")
    if len(password) > policy.max_password_length:
        policy.check_new(password)  # a 400 before any hashing
    user = _check_password(s, s.get(User, user_id), original_password, policy)
    if user_options(user).get(LOCK_PASSWORD):
        raise BadRequest("You cannot change your password at this time due to password policy "
                         "disallowing password changes. Please contact your administrator to "
                         "reset your password.")
    now = utcnow()
    if policy.minimum_password_age and user.password_self_service and user.password_created_at:
        usable_from = user.password_created_at + dt.timedelta(days=policy.minimum_password_age)
        if now < usable_from:
            raise BadRequest(
                f"You cannot change your password at this time due to the minimum password "
                f"age. Once you change your password, it must be used for "
                f"{policy.minimum_password_age} day(s) before it can be changed. Please try "
                f"again in {(usable_from - now).days} day(s) or contact your administrator to "
                f"reset your password.")
    policy.check_new(password)
    count = policy.unique_last_password_count
    if count > 0:
        earlier = list(user.password_history or [])[-(count - 1):] if count > 1 else []
        recent = [*earlier, user.password_hash]
        if any(verify_password(h, password) for h in recent):
            raise BadRequest(f"The new password cannot be identical to a previous password. "
                             f"The total number which includes the new password must be "
                             f"unique is {count}.")
    _set_password(user, password, policy, by_admin=False)
    user.failed_auth_count = 0
    return [(user.id, None)]


def delete_user(s: Session, user_id: str) -> list[Revocation]:
    from cirrus.identity.service.app_credentials import delete_for_user

    user = get_user(s, user_id)
    s.execute(delete(RoleAssignment).where(RoleAssignment.actor_id == user.id))
    s.execute(delete(InheritedRoleAssignment).where(InheritedRoleAssignment.actor_type == "user",
                                                    InheritedRoleAssignment.actor_id == user.id))
    delete_for_user(s, user.id)  # their tokens go with the user's
    s.delete(user)
    return [(user.id, None)]
