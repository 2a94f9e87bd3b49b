"""OS-INHERIT: roles granted on a domain or project "inherited_to_projects".

Such a role is held on every project of the domain (or every project below the project),
never on the domain or project itself. Tokens scoped to a project and effective role
assignments include the roles inherited from the project's domain and ancestors.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.db.models import GroupMembership, InheritedRoleAssignment, Project, Role
from cirrus.errors import NotFound
from cirrus.identity.service.common import Revocation
from cirrus.identity.service.domains import get_domain
from cirrus.identity.service.groups import get_group, member_ids
from cirrus.identity.service.projects import get_project
from cirrus.identity.service.roles import get_role
from cirrus.identity.service.users import get_user

Key = tuple[str, str, str, str, str]  # target_type, target_id, actor_type, actor_id, role_id


def _check(s: Session, target_type: str, target_id: str, actor_type: str, actor_id: str,
           role_id: str | None) -> None:
    (get_domain if target_type == "domain" else get_project)(s, target_id)
    (get_group if actor_type == "group" else get_user)(s, actor_id)
    if role_id is not None:
        get_role(s, role_id)


def _find(s: Session, key: Key) -> InheritedRoleAssignment | None:
    target_type, target_id, actor_type, actor_id, role_id = key
    _check(s, *key)
    return s.scalar(select(InheritedRoleAssignment).where(
        InheritedRoleAssignment.target_type == target_type,
        InheritedRoleAssignment.target_id == target_id,
        InheritedRoleAssignment.actor_type == actor_type,
        InheritedRoleAssignment.actor_id == actor_id,
        InheritedRoleAssignment.role_id == role_id))


def _not_found(key: Key) -> NotFound:
    return NotFound(f"Could not find role assignment with role: {key[4]}, user or group: "
                    f"{key[3]}, project, domain, or system: {key[1]}.")


def grant_inherited(s: Session, *key: str) -> None:
    k: Key = (key[0], key[1], key[2], key[3], key[4])
    if _find(s, k) is None:
        s.add(InheritedRoleAssignment(target_type=k[0], target_id=k[1], actor_type=k[2],
                                      actor_id=k[3], role_id=k[4]))
        s.flush()


def check_inherited(s: Session, *key: str) -> None:
    k: Key = (key[0], key[1], key[2], key[3], key[4])
    if _find(s, k) is None:
        raise _not_found(k)


def revoke_inherited(s: Session, *key: str) -> list[Revocation]:
    k: Key = (key[0], key[1], key[2], key[3], key[4])
    row = _find(s, k)
    if row is None:
        raise _not_found(k)
    s.delete(row)
    users = member_ids(s, [k[3]]) if k[2] == "group" else [k[3]]
    return [(u, None) for u in users]


def list_inherited_roles(s: Session, target_type: str, target_id: str, actor_type: str,
                         actor_id: str) -> list[Role]:
    _check(s, target_type, target_id, actor_type, actor_id, None)
    return list(s.scalars(
        select(Role).join(InheritedRoleAssignment, InheritedRoleAssignment.role_id == Role.id)
        .where(InheritedRoleAssignment.target_type == target_type,
               InheritedRoleAssignment.target_id == target_id,
               InheritedRoleAssignment.actor_type == actor_type,
               InheritedRoleAssignment.actor_id == actor_id).order_by(Role.name)))


def _ancestors(s: Session, project: Project) -> list[str]:
    result: list[str] = []
    parent = project.parent_id
    while parent and parent not in result and parent != project.domain_id:
        result.append(parent)
        row = s.get(Project, parent)
        parent = row.parent_id if row is not None else None
    return result


def inherited_rows_for_project(s: Session, project: Project,
                               user_id: str | None = None) -> list[InheritedRoleAssignment]:
    """The inherited assignments that reach the project (from its domain and ancestors),
    for `user_id` (directly or through their groups) when given."""
    domain_rows = ((InheritedRoleAssignment.target_type == "domain")
                   & (InheritedRoleAssignment.target_id == project.domain_id))
    ancestors = _ancestors(s, project)
    targets = domain_rows
    if ancestors:
        targets = targets | ((InheritedRoleAssignment.target_type == "project")
                             & InheritedRoleAssignment.target_id.in_(ancestors))
    query = select(InheritedRoleAssignment).where(targets)
    if user_id is not None:
        groups = list(s.scalars(select(GroupMembership.group_id).where(
            GroupMembership.user_id == user_id)))
        actor = ((InheritedRoleAssignment.actor_type == "user")
                 & (InheritedRoleAssignment.actor_id == user_id))
        if groups:
            actor = actor | ((InheritedRoleAssignment.actor_type == "group")
                             & InheritedRoleAssignment.actor_id.in_(groups))
        query = query.where(actor)
    return list(s.scalars(query))


def inherited_roles_on_project(s: Session, user_id: str, project_id: str) -> list[Role]:
    project = s.get(Project, project_id)
    if project is None:
        return []
    role_ids = sorted({r.role_id for r in inherited_rows_for_project(s, project, user_id)})
    return list(s.scalars(select(Role).where(Role.id.in_(role_ids)))) if role_ids else []


def delete_inherited_of(s: Session, *, actor_ids: list[str], target_ids: list[str]) -> None:
    """Cascade: the inherited assignments of deleted users/groups or on deleted targets."""
    s.execute(delete(InheritedRoleAssignment).where(
        InheritedRoleAssignment.actor_id.in_(actor_ids)
        | InheritedRoleAssignment.target_id.in_(target_ids)))
