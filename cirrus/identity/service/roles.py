"""Roles: queries and writes; the roles a user holds on a project or domain."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.db.models import Role, RoleAssignment
from cirrus.errors import Forbidden, NotFound
from cirrus.identity.service.common import DEFAULT_ROLES, Revocation, _conflict, _flush, new_id
from cirrus.identity.service.domains import get_domain


def project_role_names(s: Session, user_id: str, project_id: str) -> list[Role]:
    return _roles_on(s, user_id, project_id, "project")


def _roles_on(s: Session, user_id: str, target_id: str, target_type: str) -> list[Role]:
    return list(s.scalars(
        select(Role).join(RoleAssignment, RoleAssignment.role_id == Role.id)
        .where(RoleAssignment.actor_id == user_id, RoleAssignment.target_id == target_id,
               RoleAssignment.target_type == target_type)
        .order_by(Role.name)
    ))


def get_role(s: Session, role_id: str) -> Role:
    role = s.get(Role, role_id)
    if role is None:
        raise NotFound(f"Could not find role: {role_id}.")
    return role


def list_roles(s: Session, *, name: str | None = None,
               domain_id: str | None = None) -> list[Role]:
    query = select(Role).where(Role.domain_id == domain_id if domain_id else
                               Role.domain_id.is_(None)).order_by(Role.name)
    if name is not None:
        query = query.where(Role.name == name)
    return list(s.scalars(query))


def create_role(s: Session, fields: dict) -> Role:
    name = fields["name"]
    if fields.get("domain_id"):
        get_domain(s, fields["domain_id"])
    duplicate = f"Duplicate entry found with name {name}"
    if s.scalar(select(Role.id).where(Role.name == name)) is not None:
        raise _conflict("role", duplicate)
    role = Role(id=new_id(), name=name, description=fields.get("description") or "",
                domain_id=fields.get("domain_id"))
    s.add(role)
    _flush(s, "role", duplicate)
    return role


def update_role(s: Session, role_id: str, fields: dict) -> Role:
    role = get_role(s, role_id)
    name = fields.get("name", role.name)
    duplicate = f"Duplicate entry found with name {name}"
    if name != role.name:
        if role.name in DEFAULT_ROLES:
            raise Forbidden(f"You are not authorized to perform the requested action: the "
                            f"default role {role.name} cannot be renamed.")
        if s.scalar(select(Role.id).where(Role.name == name)) is not None:
            raise _conflict("role", duplicate)
        role.name = name
    if "description" in fields:
        role.description = fields["description"] or ""
    _flush(s, "role", duplicate)
    return role


def delete_role(s: Session, role_id: str) -> list[Revocation]:
    role = get_role(s, role_id)
    if role.name in DEFAULT_ROLES:
        raise Forbidden(f"You are not authorized to perform the requested action: the default "
                        f"role {role.name} cannot be deleted.")
    rows = s.execute(select(RoleAssignment.actor_id, RoleAssignment.target_id,
                            RoleAssignment.target_type)
                     .where(RoleAssignment.role_id == role.id)).all()
    s.execute(delete(RoleAssignment).where(RoleAssignment.role_id == role.id))
    s.delete(role)
    return sorted({(r.actor_id, r.target_id if r.target_type == "project" else None)
                   for r in rows}, key=lambda r: (r[0], r[1] or ""))
