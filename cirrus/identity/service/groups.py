"""Groups: queries and writes, their members, and the groups a user belongs to.

A group's role assignments are RoleAssignment rows with actor_type "group"; its members hold
those roles too (see roles._roles_on). Removing a member or deleting the group takes those
roles away, so both return the members' token revocations.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.db.models import (
    Group,
    GroupMembership,
    InheritedRoleAssignment,
    RoleAssignment,
    User,
)
from cirrus.errors import NotFound
from cirrus.identity.service.common import Revocation, _conflict, _flush, new_id
from cirrus.identity.service.domains import get_domain
from cirrus.identity.service.users import get_user

_OWN = frozenset({"id", "name", "domain_id", "description", "links"})


def _extra(fields: dict) -> dict:
    """The free-form attributes Keystone keeps with a group and returns flattened into it."""
    return {k: v for k, v in fields.items() if k not in _OWN}


def get_group(s: Session, group_id: str) -> Group:
    group = s.get(Group, group_id)
    if group is None:
        raise NotFound(f"Could not find group: {group_id}.")
    return group


def list_groups(s: Session, *, name: str | None = None, domain_id: str | None = None,
                only_domains: set[str] | None = None) -> list[Group]:
    query = select(Group).order_by(Group.name, Group.id)
    if name is not None:
        query = query.where(Group.name == name)
    if domain_id is not None:
        query = query.where(Group.domain_id == domain_id)
    if only_domains is not None:
        query = query.where(Group.domain_id.in_(sorted(only_domains)))
    return list(s.scalars(query))


def _duplicate(s: Session, domain_id: str, name: str, group_id: str | None = None) -> None:
    found = s.scalar(select(Group.id).where(Group.domain_id == domain_id, Group.name == name))
    if found is not None and found != group_id:
        raise _conflict("group", f"Duplicate entry found with name {name} at domain ID "
                                 f"{domain_id}")


def create_group(s: Session, fields: dict, default_domain_id: str) -> Group:
    domain_id = fields.get("domain_id") or default_domain_id
    get_domain(s, domain_id)
    _duplicate(s, domain_id, fields["name"])
    group = Group(id=new_id(), name=fields["name"], domain_id=domain_id,
                  description=fields.get("description") or "", extra=_extra(fields))
    s.add(group)
    _flush(s, "group", f"Duplicate entry found with name {fields['name']}")
    return group


def update_group(s: Session, group_id: str, fields: dict) -> Group:
    group = get_group(s, group_id)
    if "name" in fields and fields["name"] != group.name:
        _duplicate(s, group.domain_id, fields["name"], group.id)
        group.name = fields["name"]
    if "description" in fields:
        group.description = fields["description"] or ""
    if _extra(fields):
        group.extra = {**(group.extra or {}), **_extra(fields)}
    _flush(s, "group", f"Duplicate entry found with name {group.name}")
    return group


def member_ids(s: Session, group_ids: list[str]) -> list[str]:
    if not group_ids:
        return []
    return sorted(set(s.scalars(select(GroupMembership.user_id).where(
        GroupMembership.group_id.in_(group_ids)))))


def group_ids_of_user(s: Session, user_id: str) -> list[str]:
    return list(s.scalars(select(GroupMembership.group_id).where(
        GroupMembership.user_id == user_id)))


def delete_groups(s: Session, group_ids: list[str]) -> list[Revocation]:
    """Delete groups with their memberships and role assignments; revoke their members."""
    revocations: list[Revocation] = [(u, None) for u in member_ids(s, group_ids)]
    if group_ids:
        s.execute(delete(RoleAssignment).where(RoleAssignment.actor_type == "group",
                                               RoleAssignment.actor_id.in_(group_ids)))
        s.execute(delete(InheritedRoleAssignment).where(
            InheritedRoleAssignment.actor_type == "group",
            InheritedRoleAssignment.actor_id.in_(group_ids)))
        s.execute(delete(GroupMembership).where(GroupMembership.group_id.in_(group_ids)))
        s.execute(delete(Group).where(Group.id.in_(group_ids)))
    return revocations


def delete_group(s: Session, group_id: str) -> list[Revocation]:
    return delete_groups(s, [get_group(s, group_id).id])


def list_group_users(s: Session, group_id: str) -> list[User]:
    get_group(s, group_id)
    return list(s.scalars(select(User).join(GroupMembership, GroupMembership.user_id == User.id)
                          .where(GroupMembership.group_id == group_id).order_by(User.name)))


def groups_of_user(s: Session, user_id: str) -> list[Group]:
    get_user(s, user_id)
    return list(s.scalars(select(Group).join(GroupMembership, GroupMembership.group_id == Group.id)
                          .where(GroupMembership.user_id == user_id).order_by(Group.name)))


def _membership(s: Session, group_id: str, user_id: str) -> GroupMembership | None:
    get_group(s, group_id)
    get_user(s, user_id)
    return s.get(GroupMembership, (group_id, user_id))


def _not_member(group_id: str, user_id: str) -> NotFound:
    return NotFound(f"User '{user_id}' not found in group '{group_id}'")


def add_user_to_group(s: Session, group_id: str, user_id: str) -> None:
    if _membership(s, group_id, user_id) is None:
        s.add(GroupMembership(group_id=group_id, user_id=user_id))
        _flush(s, "group membership", f"{user_id} is already in {group_id}")


def check_user_in_group(s: Session, group_id: str, user_id: str) -> None:
    if _membership(s, group_id, user_id) is None:
        raise _not_member(group_id, user_id)


def remove_user_from_group(s: Session, group_id: str, user_id: str) -> list[Revocation]:
    membership = _membership(s, group_id, user_id)
    if membership is None:
        raise _not_member(group_id, user_id)
    s.delete(membership)
    return [(user_id, None)]
