"""Shared by the identity service's modules: the defaults, the revocation type, the
failed-login error, ids, conflicts and the free-form extra attributes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.db.models import GroupMembership, RoleAssignment
from cirrus.errors import Conflict, Unauthorized
from cirrus.identity.compliance import PasswordPolicy

DEFAULT_DOMAIN_ID = "default"
SYSTEM_ID = "system"  # the target id of system role assignments (target_type "system")
# Keystone's bootstrap roles (2023.2 on): `manager` sits between admin and member (a
# project manager), `service` is for service users (Nova's external events, for one).
DEFAULT_ROLES = ("admin", "manager", "member", "reader", "service")

Revocation = tuple[str, str | None]
DEFAULT_POLICY = PasswordPolicy()


class FailedLogin(Unauthorized):
    """A wrong password for a known user. Raised out of the transaction that checked it, so
    the caller can count it towards a lockout in a transaction of its own."""

    def __init__(self, user_id: str) -> None:
        super().__init__()
        self.user_id = user_id

# Keys a client may not set as free-form extra attributes of a project or user.
_RESERVED = frozenset({"id", "links", "name", "description", "domain_id", "enabled", "parent_id",
                       "is_domain", "tags", "options", "password", "email", "default_project_id",
                       "password_expires_at", "federated"})


def new_id() -> str:
    return uuid.uuid4().hex


def _conflict(kind: str, details: str) -> Conflict:
    return Conflict(f"Conflict occurred attempting to store {kind} - {details}.")


def _flush(s: Session, kind: str, details: str) -> None:
    """Flush, turning a unique-constraint race into the same 409 the pre-check gives."""
    try:
        s.flush()
    except IntegrityError as exc:
        raise _conflict(kind, details) from exc


def extra_attributes(extra: dict | None) -> dict:
    """The free-form attributes Keystone returns flattened into a project or user."""
    return {k: v for k, v in (extra or {}).items() if k not in _RESERVED}


def _merge_extra(current: dict | None, fields: dict) -> dict:
    merged = dict(current or {})
    for key, value in fields.items():
        if key in ("tags", "options") or key not in _RESERVED:
            merged[key] = value
    return merged


def _revoke_project_users(s: Session, project_ids: Iterable[str]) -> list[Revocation]:
    rows = s.execute(select(RoleAssignment.actor_id, RoleAssignment.actor_type,
                            RoleAssignment.target_id).where(
        RoleAssignment.target_type == "project", RoleAssignment.target_id.in_(list(project_ids))
    )).all()
    result = {(row.actor_id, row.target_id) for row in rows if row.actor_type == "user"}
    for row in rows:
        if row.actor_type == "group":
            result |= {(u, row.target_id) for u in s.scalars(select(GroupMembership.user_id)
                                                               .where(GroupMembership.group_id
                                                                      == row.actor_id))}
    return sorted(result)
