"""Domains: queries and writes; the domains a user holds a role on."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.db.models import (
    ApplicationCredential,
    Domain,
    Group,
    GroupMembership,
    ImpliedRole,
    InheritedRoleAssignment,
    Project,
    Role,
    RoleAssignment,
    User,
)
from cirrus.errors import Forbidden, NotFound
from cirrus.identity.service.common import (
    DEFAULT_DOMAIN_ID,
    Revocation,
    _conflict,
    _flush,
    _revoke_project_users,
    new_id,
)


def get_domain(s: Session, domain_id: str) -> Domain:
    domain = s.get(Domain, domain_id)
    if domain is None:
        raise NotFound(f"Could not find domain: {domain_id}.")
    return domain


def list_domains(s: Session, *, name: str | None = None, enabled: bool | None = None,
                 only_ids: Iterable[str] | None = None) -> list[Domain]:
    query = select(Domain).order_by(Domain.name)
    if name is not None:
        query = query.where(Domain.name == name)
    if enabled is not None:
        query = query.where(Domain.enabled == enabled)
    if only_ids is not None:
        query = query.where(Domain.id.in_(list(only_ids)))
    return list(s.scalars(query))


def create_domain(s: Session, fields: dict) -> Domain:
    domain_id = fields.get("explicit_domain_id") or new_id()
    if s.get(Domain, domain_id) is not None or s.get(Project, domain_id) is not None:
        raise _conflict("domain", f"Duplicate ID, {domain_id}")
    if s.scalar(select(Domain.id).where(Domain.name == fields["name"])) is not None:
        raise _conflict("domain", f"Duplicate entry found with name {fields['name']}")
    domain = Domain(id=domain_id, name=fields["name"], description=fields.get("description") or "",
                    enabled=fields.get("enabled", True))
    s.add(domain)
    _flush(s, "domain", f"Duplicate entry found with name {fields['name']}")
    return domain


def update_domain(s: Session, domain_id: str, fields: dict) -> tuple[Domain, list[Revocation]]:
    domain = get_domain(s, domain_id)
    revocations: list[Revocation] = []
    if "name" in fields and fields["name"] != domain.name:
        if s.scalar(select(Domain.id).where(Domain.name == fields["name"])) is not None:
            raise _conflict("domain", f"Duplicate entry found with name {fields['name']}")
        domain.name = fields["name"]
    if "description" in fields:
        domain.description = fields["description"] or ""
    if "enabled" in fields:
        if domain.enabled and not fields["enabled"]:
            revocations = _domain_revocations(s, domain.id)
        domain.enabled = fields["enabled"]
    _flush(s, "domain", f"Duplicate entry found with name {domain.name}")
    return domain, revocations


def _domain_revocations(s: Session, domain_id: str) -> list[Revocation]:
    """Everything a disabled or deleted domain takes away: its users' and projects' tokens."""
    users = set(s.scalars(select(User.id).where(User.domain_id == domain_id)))
    users |= set(s.scalars(select(RoleAssignment.actor_id).where(
        RoleAssignment.actor_type == "user",
        RoleAssignment.target_type == "domain", RoleAssignment.target_id == domain_id)))
    groups = set(s.scalars(select(Group.id).where(Group.domain_id == domain_id)))
    groups |= set(s.scalars(select(RoleAssignment.actor_id).where(
        RoleAssignment.actor_type == "group",
        RoleAssignment.target_type == "domain", RoleAssignment.target_id == domain_id)))
    if groups:
        users |= set(s.scalars(select(GroupMembership.user_id).where(
            GroupMembership.group_id.in_(sorted(groups)))))
    project_ids = list(s.scalars(select(Project.id).where(Project.domain_id == domain_id)))
    result = {(u, None) for u in users} | set(_revoke_project_users(s, project_ids))
    return sorted(result, key=lambda r: (r[0], r[1] or ""))


def delete_domain(s: Session, domain_id: str) -> list[Revocation]:
    """Delete a disabled domain with its projects, users, groups, domain-specific roles and
    every role assignment of, on or with them."""
    domain = get_domain(s, domain_id)
    if domain.enabled:
        raise Forbidden("You are not authorized to perform the requested action: Cannot delete "
                        "a domain that is enabled, please disable it first.")
    if domain.id == DEFAULT_DOMAIN_ID:
        raise Forbidden("You are not authorized to perform the requested action: the default "
                        "domain cannot be deleted.")
    revocations = _domain_revocations(s, domain.id)
    project_ids = list(s.scalars(select(Project.id).where(Project.domain_id == domain.id)))
    user_ids = list(s.scalars(select(User.id).where(User.domain_id == domain.id)))
    group_ids = list(s.scalars(select(Group.id).where(Group.domain_id == domain.id)))
    role_ids = list(s.scalars(select(Role.id).where(Role.domain_id == domain.id)))
    s.execute(delete(RoleAssignment).where(
        RoleAssignment.target_id.in_([*project_ids, domain.id]) |
        RoleAssignment.actor_id.in_([*user_ids, *group_ids]) |
        RoleAssignment.role_id.in_(role_ids)))
    s.execute(delete(GroupMembership).where(GroupMembership.group_id.in_(group_ids) |
                                            GroupMembership.user_id.in_(user_ids)))
    s.execute(delete(ImpliedRole).where(ImpliedRole.prior_role_id.in_(role_ids) |
                                        ImpliedRole.implied_role_id.in_(role_ids)))
    s.execute(delete(InheritedRoleAssignment).where(
        InheritedRoleAssignment.target_id.in_([*project_ids, domain.id]) |
        InheritedRoleAssignment.actor_id.in_([*user_ids, *group_ids]) |
        InheritedRoleAssignment.role_id.in_(role_ids)))
    s.execute(delete(ApplicationCredential).where(
        ApplicationCredential.user_id.in_(user_ids) |
        ApplicationCredential.project_id.in_(project_ids)))
    s.execute(delete(Group).where(Group.domain_id == domain.id))
    s.execute(delete(Project).where(Project.domain_id == domain.id))
    s.execute(delete(User).where(User.domain_id == domain.id))
    s.execute(delete(Role).where(Role.domain_id == domain.id))
    s.delete(domain)
    return revocations


def domains_of_user(s: Session, user_id: str) -> list[Domain]:
    """Enabled domains the user holds a role on."""
    groups = list(s.scalars(select(GroupMembership.group_id).where(
        GroupMembership.user_id == user_id)))
    actor = (RoleAssignment.actor_type == "user") & (RoleAssignment.actor_id == user_id)
    if groups:
        actor = actor | ((RoleAssignment.actor_type == "group")
                         & RoleAssignment.actor_id.in_(groups))
    domain_ids = set(s.scalars(select(RoleAssignment.target_id).where(
        actor, RoleAssignment.target_type == "domain")))
    return list_domains(s, enabled=True, only_ids=domain_ids) if domain_ids else []
