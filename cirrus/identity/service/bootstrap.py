"""The first start: the Default domain, the default roles, the admin user and project
(idempotent), and an administrator's password reset."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import Domain, ImpliedRole, Project, Role, RoleAssignment, User, utcnow
from cirrus.identity.compliance import BOOTSTRAP_ADMIN_OPTIONS, PasswordPolicy, user_options
from cirrus.identity.passwords import hash_password
from cirrus.identity.policy import IMPLIED_ROLES
from cirrus.identity.service.common import (
    DEFAULT_DOMAIN_ID,
    DEFAULT_POLICY,
    DEFAULT_ROLES,
    SYSTEM_ID,
    new_id,
)
from cirrus.identity.service.users import _set_password


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
                    password_created_at=utcnow() if password else None,
                    default_project_id=default_project_id)
        s.add(user)
        s.flush()
    return user


def reset_password(user: User, password: str, policy: PasswordPolicy = DEFAULT_POLICY) -> None:
    """An administrator's reset (`cirrus bootstrap`): also lifts a lockout."""
    _set_password(user, password, policy, by_admin=True)
    user.failed_auth_count = 0


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
    """Idempotent first start: Default domain, the default roles (admin, manager, member,
    reader, service), admin user+project."""
    ensure_default_domain(s)
    roles = {name: ensure_role(s, name) for name in DEFAULT_ROLES}
    project = ensure_project(s, admin_project, description="Bootstrap project for the admin")
    ensure_project(s, "service", description="Project for Cirrus's own service users")
    user = ensure_user(s, admin_user, admin_password, default_project_id=project.id)
    # The cloud's own administrator is exempt from lockout and expiry unless an operator has
    # set these options otherwise: a cloud must not be able to lock itself out.
    options = user_options(user)
    if any(name not in options for name in BOOTSTRAP_ADMIN_OPTIONS):
        user.extra = {**(user.extra or {}),
                      "options": {**BOOTSTRAP_ADMIN_OPTIONS, **options}}
    ensure_assignment(s, roles["admin"].id, user.id, project.id)
    ensure_assignment(s, roles["admin"].id, user.id, DEFAULT_DOMAIN_ID, target_type="domain")
    ensure_assignment(s, roles["admin"].id, user.id, SYSTEM_ID, target_type="system")
    for prior, implied in IMPLIED_ROLES.items():  # Keystone's bootstrap stores these rules
        for name in implied[:1]:  # admin -> manager -> member -> reader: the chain gives the rest
            if s.get(ImpliedRole, (roles[prior].id, roles[name].id)) is None:
                s.add(ImpliedRole(prior_role_id=roles[prior].id, implied_role_id=roles[name].id))
                s.flush()
    return user
