"""Role assignments: grants on a project or domain, their checks and the listing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.db.models import Domain, Project, Role, RoleAssignment, User
from cirrus.errors import NotFound
from cirrus.identity.policy import IMPLIED_ROLES
from cirrus.identity.service.common import Revocation
from cirrus.identity.service.domains import get_domain
from cirrus.identity.service.projects import get_project
from cirrus.identity.service.roles import _roles_on, get_role
from cirrus.identity.service.users import get_user

log = logging.getLogger(__name__)


def _get_target(s: Session, target_type: str, target_id: str) -> Project | Domain:
    return get_project(s, target_id) if target_type == "project" else get_domain(s, target_id)


def roles_of_user_on(s: Session, target_type: str, target_id: str, user_id: str) -> list[Role]:
    """Roles directly assigned to the user on the project or domain."""
    _get_target(s, target_type, target_id)
    get_user(s, user_id)
    return _roles_on(s, user_id, target_id, target_type)


def _find_grant(s: Session, target_type: str, target_id: str, user_id: str,
                role_id: str) -> RoleAssignment | None:
    _get_target(s, target_type, target_id)
    get_user(s, user_id)
    get_role(s, role_id)
    return s.scalar(select(RoleAssignment).where(
        RoleAssignment.role_id == role_id, RoleAssignment.actor_id == user_id,
        RoleAssignment.target_id == target_id, RoleAssignment.target_type == target_type))


def _assignment_not_found(role_id: str, user_id: str, target_id: str) -> NotFound:
    return NotFound(f"Could not find role assignment with role: {role_id}, user or group: "
                    f"{user_id}, project, domain, or system: {target_id}.")


def check_grant(s: Session, target_type: str, target_id: str, user_id: str, role_id: str) -> None:
    if _find_grant(s, target_type, target_id, user_id, role_id) is None:
        raise _assignment_not_found(role_id, user_id, target_id)


def grant_role(s: Session, target_type: str, target_id: str, user_id: str, role_id: str) -> None:
    if _find_grant(s, target_type, target_id, user_id, role_id) is None:
        try:
            with s.begin_nested():
                s.add(RoleAssignment(role_id=role_id, actor_id=user_id, target_id=target_id,
                                     target_type=target_type))
        except IntegrityError:  # granted concurrently: the grant exists, which is what was asked
            log.info("role %s on %s for %s was granted concurrently", role_id, target_id, user_id)


def revoke_role(s: Session, target_type: str, target_id: str, user_id: str,
                role_id: str) -> list[Revocation]:
    grant = _find_grant(s, target_type, target_id, user_id, role_id)
    if grant is None:
        raise _assignment_not_found(role_id, user_id, target_id)
    s.delete(grant)
    return [(user_id, target_id if target_type == "project" else None)]


@dataclass
class Assignment:
    """One (role, user, project or domain) triple, as /v3/role_assignments lists it."""

    role: Role
    user: User
    target_type: str  # project | domain
    target: Project | Domain
    prior_role: Role | None = None  # the assigned role this one is implied by (effective)


def list_assignments(s: Session, *, user_id: str | None = None, role_id: str | None = None,
                     project_id: str | None = None, domain_id: str | None = None,
                     effective: bool = False) -> list[Assignment]:
    """Direct assignments matching the filters; `effective` adds the roles they imply."""
    query = select(RoleAssignment)
    if user_id is not None:
        query = query.where(RoleAssignment.actor_id == user_id)
    if project_id is not None:
        query = query.where(RoleAssignment.target_type == "project",
                            RoleAssignment.target_id == project_id)
    if domain_id is not None:
        query = query.where(RoleAssignment.target_type == "domain",
                            RoleAssignment.target_id == domain_id)
    if role_id is not None and not effective:
        query = query.where(RoleAssignment.role_id == role_id)
    rows = list(s.scalars(query))
    if not rows:
        return []
    roles = {r.id: r for r in s.scalars(select(Role))}
    roles_by_name = {r.name: r for r in roles.values()}
    users = {u.id: u for u in s.scalars(select(User).where(
        User.id.in_(sorted({r.actor_id for r in rows}))))}
    projects = {p.id: p for p in s.scalars(select(Project).where(
        Project.id.in_(sorted({r.target_id for r in rows if r.target_type == "project"}))))}
    domains = {d.id: d for d in s.scalars(select(Domain).where(
        Domain.id.in_(sorted({r.target_id for r in rows if r.target_type == "domain"}))))}
    result: list[Assignment] = []
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        role, user = roles.get(row.role_id), users.get(row.actor_id)
        target = (projects if row.target_type == "project" else domains).get(row.target_id)
        if role is None or user is None or target is None:
            continue  # a dangling row (its target was removed outside the API)
        seen.add((role.id, user.id, target.id))
        result.append(Assignment(role, user, row.target_type, target))
    if effective:
        for direct in list(result):
            for implied_name in IMPLIED_ROLES.get(direct.role.name, []):
                implied = roles_by_name.get(implied_name)
                if implied is None:
                    continue
                key = (implied.id, direct.user.id, direct.target.id)
                if key in seen:
                    continue
                seen.add(key)
                result.append(Assignment(implied, direct.user, direct.target_type, direct.target,
                                         prior_role=direct.role))
        if role_id is not None:
            result = [a for a in result if a.role.id == role_id]
    result.sort(key=lambda a: (a.target_type, a.target.name, a.user.name, a.role.name))
    return result
