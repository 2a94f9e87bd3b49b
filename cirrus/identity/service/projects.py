"""Projects: queries and writes; the projects a user holds a role on."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.db.models import ApplicationCredential, Domain, GroupMembership, Project, RoleAssignment
from cirrus.errors import BadRequest, Forbidden, NotFound
from cirrus.identity.service.common import (
    Revocation,
    _conflict,
    _flush,
    _merge_extra,
    _revoke_project_users,
    new_id,
)
from cirrus.identity.service.domains import get_domain


def _usable_project(s: Session, project: Project | None) -> Project | None:
    if project is None or not project.enabled:
        return None
    domain = s.get(Domain, project.domain_id)
    return project if domain is not None and domain.enabled else None


def get_project(s: Session, project_id: str) -> Project:
    project = s.get(Project, project_id)
    if project is None:
        raise NotFound(f"Could not find project: {project_id}.")
    return project


def list_projects(s: Session, *, name: str | None = None, domain_id: str | None = None,
                  enabled: bool | None = None, parent_id: str | None = None,
                  only_ids: Iterable[str] | None = None) -> list[Project]:
    query = select(Project).order_by(Project.name, Project.id)
    if name is not None:
        query = query.where(Project.name == name)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    if enabled is not None:
        query = query.where(Project.enabled == enabled)
    if only_ids is not None:
        query = query.where(Project.id.in_(list(only_ids)))
    projects = list(s.scalars(query))
    if parent_id is not None:
        projects = [p for p in projects if (p.parent_id or p.domain_id) == parent_id]
    return projects


def create_project(s: Session, fields: dict, default_domain_id: str) -> Project:
    parent_id = fields.get("parent_id")
    domain_id = fields.get("domain_id")
    if (not domain_id and parent_id and s.get(Project, parent_id) is None
            and s.get(Domain, parent_id) is not None):
        domain_id = parent_id  # a parent acting as a domain: a top-level project of that domain
    domain_id = domain_id or default_domain_id
    get_domain(s, domain_id)
    if parent_id and parent_id != domain_id:
        from cirrus.identity.service.project_tree import check_new_child

        parent = get_project(s, parent_id)
        if parent.domain_id != domain_id:
            raise BadRequest("Cannot create project, the parent is in a different domain.")
        check_new_child(s, parent)
    else:
        parent_id = None
    name = fields["name"]
    duplicate = f"Duplicate entry found with name {name} at domain ID {domain_id}"
    if s.scalar(select(Project.id).where(Project.name == name,
                                         Project.domain_id == domain_id)) is not None:
        raise _conflict("project", duplicate)
    project = Project(id=new_id(), name=name, domain_id=domain_id,
                      description=fields.get("description") or "",
                      enabled=fields.get("enabled", True), parent_id=parent_id,
                      extra=_merge_extra({"tags": [], "options": {}}, fields))
    s.add(project)
    _flush(s, "project", duplicate)
    return project


def update_project(s: Session, project_id: str, fields: dict) -> tuple[Project, list[Revocation]]:
    project = get_project(s, project_id)
    if fields.get("is_domain", False) is not False:
        raise BadRequest("Update of `is_domain` is not allowed.")
    for key in ("domain_id", "parent_id"):
        current = project.domain_id if key == "domain_id" else (project.parent_id or
                                                                 project.domain_id)
        if key in fields and fields[key] != current:
            raise BadRequest(f"Update of `{key}` is not allowed.")
    revocations: list[Revocation] = []
    name = fields.get("name", project.name)
    duplicate = f"Duplicate entry found with name {name} at domain ID {project.domain_id}"
    if name != project.name:
        if s.scalar(select(Project.id).where(Project.name == name,
                                             Project.domain_id == project.domain_id)) is not None:
            raise _conflict("project", duplicate)
        project.name = name
    if "description" in fields:
        project.description = fields["description"] or ""
    if "enabled" in fields:
        if fields["enabled"] and not project.enabled:
            from cirrus.identity.service.project_tree import check_enable

            check_enable(s, project)
        if project.enabled and not fields["enabled"]:
            revocations = _revoke_project_users(s, [project.id])
        project.enabled = fields["enabled"]
    project.extra = _merge_extra(project.extra, fields)
    _flush(s, "project", duplicate)
    return project, revocations


def delete_project(s: Session, project_id: str) -> list[Revocation]:
    project = get_project(s, project_id)
    if s.scalar(select(Project.id).where(Project.parent_id == project.id).limit(1)) is not None:
        raise Forbidden(f"You are not authorized to perform the requested action: cannot delete "
                        f"the project {project.id} since it is not a leaf in the hierarchy.")
    revocations = _revoke_project_users(s, [project.id])
    s.execute(delete(RoleAssignment).where(RoleAssignment.target_type == "project",
                                           RoleAssignment.target_id == project.id))
    s.execute(delete(ApplicationCredential).where(ApplicationCredential.project_id == project.id))
    s.delete(project)
    return revocations


def projects_of_user(s: Session, user_id: str, *, usable_only: bool = False) -> list[Project]:
    """Projects the user holds a role on (usable_only: enabled, in an enabled domain)."""
    groups = list(s.scalars(select(GroupMembership.group_id).where(
        GroupMembership.user_id == user_id)))
    actor = (RoleAssignment.actor_type == "user") & (RoleAssignment.actor_id == user_id)
    if groups:  # and the projects of their groups
        actor = actor | ((RoleAssignment.actor_type == "group")
                         & RoleAssignment.actor_id.in_(groups))
    project_ids = set(s.scalars(select(RoleAssignment.target_id).where(
        actor, RoleAssignment.target_type == "project")))
    projects = list_projects(s, only_ids=project_ids) if project_ids else []
    if usable_only:
        projects = [p for p in projects if _usable_project(s, p) is not None]
    return projects
