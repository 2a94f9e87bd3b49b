"""Role assignments: grants to a user or group on a project, a domain or the system, their
checks, and the /v3/role_assignments listing (direct or effective)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.db.models import (
    Domain,
    Group,
    GroupMembership,
    InheritedRoleAssignment,
    Project,
    Role,
    RoleAssignment,
    User,
)
from cirrus.errors import BadRequest, Forbidden, NotFound
from cirrus.identity.service import implied
from cirrus.identity.service.common import SYSTEM_ID, Revocation
from cirrus.identity.service.domains import get_domain
from cirrus.identity.service.groups import get_group, member_ids
from cirrus.identity.service.projects import get_project
from cirrus.identity.service.roles import get_role
from cirrus.identity.service.users import get_user

log = logging.getLogger(__name__)


def _get_target(s: Session, target_type: str, target_id: str) -> Project | Domain | None:
    if target_type == "system":
        return None
    return get_project(s, target_id) if target_type == "project" else get_domain(s, target_id)


def _get_actor(s: Session, actor_type: str, actor_id: str) -> User | Group:
    return get_group(s, actor_id) if actor_type == "group" else get_user(s, actor_id)


def roles_of_user_on(s: Session, target_type: str, target_id: str, user_id: str,
                     actor_type: str = "user") -> list[Role]:
    """Roles directly assigned to the user (or group) on the project, domain or system."""
    _get_target(s, target_type, target_id)
    _get_actor(s, actor_type, user_id)
    return list(s.scalars(
        select(Role).join(RoleAssignment, RoleAssignment.role_id == Role.id)
        .where(RoleAssignment.actor_type == actor_type, RoleAssignment.actor_id == user_id,
               RoleAssignment.target_id == target_id, RoleAssignment.target_type == target_type)
        .order_by(Role.name)))


def _find_grant(s: Session, target_type: str, target_id: str, actor_id: str, role_id: str,
                actor_type: str) -> RoleAssignment | None:
    _get_target(s, target_type, target_id)
    _get_actor(s, actor_type, actor_id)
    get_role(s, role_id)
    return s.scalar(select(RoleAssignment).where(
        RoleAssignment.role_id == role_id, RoleAssignment.actor_id == actor_id,
        RoleAssignment.actor_type == actor_type,
        RoleAssignment.target_id == target_id, RoleAssignment.target_type == target_type))


def _assignment_not_found(role_id: str, actor_id: str, target_id: str) -> NotFound:
    return NotFound(f"Could not find role assignment with role: {role_id}, user or group: "
                    f"{actor_id}, project, domain, or system: {target_id}.")


def check_grant(s: Session, target_type: str, target_id: str, user_id: str, role_id: str,
                actor_type: str = "user") -> None:
    if _find_grant(s, target_type, target_id, user_id, role_id, actor_type) is None:
        raise _assignment_not_found(role_id, user_id, target_id)


def grant_role(s: Session, target_type: str, target_id: str, user_id: str, role_id: str,
               actor_type: str = "user") -> None:
    role = get_role(s, role_id)
    if role.domain_id and target_type == "project":
        project = get_project(s, target_id)
        if project.domain_id != role.domain_id:
            raise Forbidden(f"You are not authorized to perform the requested action: "
                            f"Project {target_id} must be in the same domain as the role "
                            f"{role_id} being assigned.")
    if _find_grant(s, target_type, target_id, user_id, role_id, actor_type) is None:
        try:
            with s.begin_nested():
                s.add(RoleAssignment(role_id=role_id, actor_id=user_id, target_id=target_id,
                                     target_type=target_type, actor_type=actor_type))
        except IntegrityError:  # granted concurrently: the grant exists, which is what was asked
            log.info("role %s on %s for %s was granted concurrently", role_id, target_id, user_id)


def revoke_role(s: Session, target_type: str, target_id: str, user_id: str,
                role_id: str, actor_type: str = "user") -> list[Revocation]:
    grant = _find_grant(s, target_type, target_id, user_id, role_id, actor_type)
    if grant is None:
        raise _assignment_not_found(role_id, user_id, target_id)
    s.delete(grant)
    users = member_ids(s, [user_id]) if actor_type == "group" else [user_id]
    # Only the tokens scoped to that project or domain carried the role (Keystone revokes by
    # grant): a domain grant's removal leaves the user's project tokens alone. A system
    # grant's removal revokes all of them (system tokens name no project or domain).
    scope = target_id if target_type in ("project", "domain") else None
    return [(u, scope) for u in users]


@dataclass
class Assignment:
    """One (role, user or group, project/domain/system) triple, as /v3/role_assignments lists
    it. An effective one may come from a group (`group` set with `user`) or be implied."""

    role: Role
    user: User | None
    target_type: str  # project | domain | system
    target: Project | Domain | None  # None for the system
    prior_role: Role | None = None  # the assigned role this one is implied by (effective)
    group: Group | None = None  # the group assigned (direct) or the membership (effective)
    inherited_from: str | None = None  # "domains/{id}" or "projects/{id}" (OS-INHERIT)


def _subtree(s: Session, project_id: str) -> list[str]:
    """The project and every project below it."""
    result, frontier = [project_id], [project_id]
    while frontier:
        frontier = list(s.scalars(select(Project.id).where(Project.parent_id.in_(frontier))))
        frontier = [p for p in frontier if p not in result]
        result.extend(frontier)
    return result


def list_assignments(s: Session, *, user_id: str | None = None, group_id: str | None = None,
                     role_id: str | None = None, project_id: str | None = None,
                     domain_id: str | None = None, system: bool = False,
                     effective: bool = False, include_subtree: bool = False) -> list[Assignment]:
    """Assignments matching the filters. `effective`: group assignments become their members'
    (user.id then matches those too) and the roles assignments imply are added."""
    if effective and group_id is not None:
        raise BadRequest("group.id: combining effective and group filter will always result "
                         "in an empty list.")
    if include_subtree and project_id is None:
        raise BadRequest("include_subtree: scope.project.id must be given as well.")
    query = select(RoleAssignment)
    if user_id is not None:
        actor = (RoleAssignment.actor_type == "user") & (RoleAssignment.actor_id == user_id)
        if effective:
            user_groups = list(s.scalars(select(GroupMembership.group_id).where(
                GroupMembership.user_id == user_id)))
            actor = actor | ((RoleAssignment.actor_type == "group")
                             & RoleAssignment.actor_id.in_(user_groups))
        query = query.where(actor)
    if group_id is not None:
        query = query.where(RoleAssignment.actor_type == "group",
                            RoleAssignment.actor_id == group_id)
    if project_id is not None:
        targets = _subtree(s, project_id) if include_subtree else [project_id]
        query = query.where(RoleAssignment.target_type == "project",
                            RoleAssignment.target_id.in_(targets))
    if domain_id is not None:
        query = query.where(RoleAssignment.target_type == "domain",
                            RoleAssignment.target_id == domain_id)
    if system:
        query = query.where(RoleAssignment.target_type == "system")
    if role_id is not None and not effective:
        query = query.where(RoleAssignment.role_id == role_id)
    rows = list(s.scalars(query))
    inherited: list[Assignment] = []
    if effective and domain_id is None and not system:
        inherited = _inherited_assignments(s, user_id, role_id, project_id, include_subtree)
    if not rows and not inherited:
        return []
    roles = {r.id: r for r in s.scalars(select(Role))}
    group_ids = sorted({r.actor_id for r in rows if r.actor_type == "group"})
    groups = {g.id: g for g in s.scalars(select(Group).where(Group.id.in_(group_ids)))}
    members: dict[str, list[str]] = {}
    if effective:
        for m in s.scalars(select(GroupMembership).where(GroupMembership.group_id.in_(group_ids))):
            if user_id is None or m.user_id == user_id:
                members.setdefault(m.group_id, []).append(m.user_id)
    user_ids = {r.actor_id for r in rows if r.actor_type == "user"}
    user_ids |= {u for ids in members.values() for u in ids}
    users = {u.id: u for u in s.scalars(select(User).where(User.id.in_(sorted(user_ids))))}
    projects = {p.id: p for p in s.scalars(select(Project).where(
        Project.id.in_(sorted({r.target_id for r in rows if r.target_type == "project"}))))}
    domains = {d.id: d for d in s.scalars(select(Domain).where(
        Domain.id.in_(sorted({r.target_id for r in rows if r.target_type == "domain"}))))}
    direct: list[Assignment] = []
    for row in rows:
        role = roles.get(row.role_id)
        target = None if row.target_type == "system" else (
            projects if row.target_type == "project" else domains).get(row.target_id)
        if role is None or (target is None and row.target_type != "system"):
            continue  # a dangling row (its target was removed outside the API)
        if row.actor_type == "group":
            group = groups.get(row.actor_id)
            if group is None:
                continue
            if not effective:
                direct.append(Assignment(role, None, row.target_type, target, group=group))
            for member in members.get(group.id, []):
                if member in users:
                    direct.append(Assignment(role, users[member], row.target_type, target,
                                             group=group))
        elif row.actor_id in users:
            direct.append(Assignment(role, users[row.actor_id], row.target_type, target))
    result = direct
    if effective:
        direct = direct + inherited
        result = []
        seen: set[tuple[str, str, str, str]] = set()
        for a in direct:
            for implied_id, prior_id in implied.implied_closure(s, [a.role.id]):
                role = roles.get(implied_id)
                key = (implied_id, a.user.id if a.user else "", a.target_type,
                       a.target.id if a.target else SYSTEM_ID)
                if role is None or role.domain_id or key in seen:
                    continue  # domain-specific roles only stand for what they imply
                seen.add(key)
                result.append(Assignment(role, a.user, a.target_type, a.target,
                                         prior_role=a.role if prior_id else None, group=a.group,
                                         inherited_from=a.inherited_from))
        if role_id is not None:
            result = [a for a in result if a.role.id == role_id]
    result.sort(key=lambda a: (a.target_type, a.target.name if a.target else "",
                               a.user.name if a.user else "", a.group.name if a.group else "",
                               a.role.name))
    return result


def _inherited_assignments(s: Session, user_id: str | None, role_id: str | None,
                           project_id: str | None, include_subtree: bool) -> list[Assignment]:
    """The OS-INHERIT assignments as what they give: a role on each project they reach."""
    query = select(InheritedRoleAssignment)
    if user_id is not None:
        groups = list(s.scalars(select(GroupMembership.group_id).where(
            GroupMembership.user_id == user_id)))
        query = query.where(((InheritedRoleAssignment.actor_type == "user")
                             & (InheritedRoleAssignment.actor_id == user_id))
                            | ((InheritedRoleAssignment.actor_type == "group")
                               & InheritedRoleAssignment.actor_id.in_(groups)))
    rows = list(s.scalars(query))
    if not rows:
        return []
    wanted = set(_subtree(s, project_id) if include_subtree else [project_id]) \
        if project_id is not None else None
    result: list[Assignment] = []
    for row in rows:
        role = s.get(Role, row.role_id)
        if role is None:
            continue
        if row.target_type == "domain":
            projects = list(s.scalars(select(Project).where(Project.domain_id == row.target_id)))
        else:
            below = _subtree(s, row.target_id)[1:]
            projects = list(s.scalars(select(Project).where(Project.id.in_(below))))
        projects = [p for p in projects if wanted is None or p.id in wanted]
        if not projects:
            continue
        group = s.get(Group, row.actor_id) if row.actor_type == "group" else None
        if row.actor_type == "group":
            user_ids = [u for u in member_ids(s, [row.actor_id]) if user_id in (None, u)]
        else:
            user_ids = [row.actor_id]
        users = [u for u in (s.get(User, uid) for uid in user_ids) if u is not None]
        source = f"{'domains' if row.target_type == 'domain' else 'projects'}/{row.target_id}"
        for project in projects:
            for user in users:
                result.append(Assignment(role, user, "project", project, group=group,
                                         inherited_from=source))
    return result
