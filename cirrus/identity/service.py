"""Users, projects, domains, roles and role assignments: queries and writes."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import Domain, Project, Role, RoleAssignment, User
from cirrus.identity.passwords import hash_password

DEFAULT_DOMAIN_ID = "default"
DEFAULT_ROLES = ("admin", "member", "reader")


def new_id() -> str:
    return uuid.uuid4().hex


def ensure_default_domain(s: Session) -> Domain:
    domain = s.get(Domain, DEFAULT_DOMAIN_ID)
    if domain is None:
        domain = Domain(id=DEFAULT_DOMAIN_ID, name="Default", description="The default domain",
                        enabled=True)
        s.add(domain)
        s.flush()
    return domain


def ensure_role(s: Session, name: str) -> Role:
    role = s.scalar(select(Role).where(Role.name == name))
    if role is None:
        role = Role(id=new_id(), name=name, description="")
        s.add(role)
        s.flush()
    return role


def ensure_project(s: Session, name: str, domain_id: str = DEFAULT_DOMAIN_ID,
                   description: str = "") -> Project:
    project = s.scalar(select(Project).where(Project.name == name, Project.domain_id == domain_id))
    if project is None:
        project = Project(id=new_id(), name=name, domain_id=domain_id, description=description,
                          enabled=True, extra={})
        s.add(project)
        s.flush()
    return project


def ensure_user(s: Session, name: str, password: str | None, domain_id: str = DEFAULT_DOMAIN_ID,
                default_project_id: str | None = None) -> User:
    user = s.scalar(select(User).where(User.name == name, User.domain_id == domain_id))
    if user is None:
        user = User(id=new_id(), name=name, domain_id=domain_id, enabled=True, extra={},
                    password_hash=hash_password(password) if password else None,
                    default_project_id=default_project_id)
        s.add(user)
        s.flush()
    return user


def ensure_assignment(s: Session, role_id: str, user_id: str, target_id: str,
                      target_type: str = "project") -> None:
    exists = s.scalar(select(RoleAssignment.id).where(
        RoleAssignment.role_id == role_id, RoleAssignment.actor_id == user_id,
        RoleAssignment.target_id == target_id))
    if exists is None:
        s.add(RoleAssignment(role_id=role_id, actor_id=user_id, target_id=target_id,
                             target_type=target_type))
        s.flush()


def bootstrap(s: Session, admin_user: str, admin_password: str, admin_project: str) -> User:
    """Idempotent first start: Default domain, admin/member/reader roles, admin user+project."""
    ensure_default_domain(s)
    roles = {name: ensure_role(s, name) for name in DEFAULT_ROLES}
    project = ensure_project(s, admin_project, description="Bootstrap project for the admin")
    ensure_project(s, "service", description="Project for Cirrus's own service users")
    user = ensure_user(s, admin_user, admin_password, default_project_id=project.id)
    ensure_assignment(s, roles["admin"].id, user.id, project.id)
    ensure_assignment(s, roles["admin"].id, user.id, DEFAULT_DOMAIN_ID, target_type="domain")
    return user


def project_role_names(s: Session, user_id: str, project_id: str) -> list[Role]:
    return list(s.scalars(
        select(Role).join(RoleAssignment, RoleAssignment.role_id == Role.id)
        .where(RoleAssignment.actor_id == user_id, RoleAssignment.target_id == project_id)
        .order_by(Role.name)
    ))


def build_claims(s: Session, tokens, user: User, project: Project | None):  # noqa: ANN001
    """Claims for a token of `user`, scoped to `project` (None: unscoped).

    Implied roles are included (admin implies member implies reader), as Keystone does.
    """
    from cirrus.errors import Unauthorized
    from cirrus.identity.policy import expand_roles

    user_domain = s.get(Domain, user.domain_id)
    kwargs: dict = dict(user_id=user.id, user_name=user.name, user_domain_id=user.domain_id,
                        user_domain_name=user_domain.name if user_domain else user.domain_id,
                        methods=["password"])
    if project is not None:
        assigned = project_role_names(s, user.id, project.id)
        if not assigned:
            raise Unauthorized(f"User {user.id} has no access to project {project.id}.")
        by_name = {r.name: r for r in s.scalars(select(Role))}
        names = expand_roles([r.name for r in assigned])
        project_domain = s.get(Domain, project.domain_id)
        kwargs.update(
            project_id=project.id, project_name=project.name, project_domain_id=project.domain_id,
            project_domain_name=project_domain.name if project_domain else project.domain_id,
            roles=[{"id": by_name[n].id, "name": n} for n in names if n in by_name],
        )
    return tokens.new_claims(**kwargs)
