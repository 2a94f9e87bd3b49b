"""A server's security groups, as Nova's proxy to the network service sees them.

The instance records its groups by name (`Instance.security_groups`, what Nova shows); its
ports record them by id (what the network service filters on). Adding or removing a group
changes both in one transaction. The groups themselves live in `network/security_groups.py`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.compute import instances
from cirrus.context import RequestContext
from cirrus.db.models import Port, SecurityGroup, utcnow
from cirrus.errors import BadRequest, NotFound
from cirrus.network import security_groups as sg
from cirrus.services import Deps


def _project_group(s: Session, project_id: str, name: str) -> SecurityGroup:
    sg.ensure_default_group(s, project_id)
    groups = list(s.scalars(select(SecurityGroup).where(SecurityGroup.project_id == project_id)))
    match = [g for g in groups if g.id == name] or [g for g in groups if g.name == name]
    if not match:
        raise NotFound(f"Security group {name} not found for project {project_id}.")
    if len(match) > 1:
        raise BadRequest(f"Multiple security groups named {name!r}; use the group's id.")
    return match[0]


def server_groups(s: Session, ctx: RequestContext, uuid: str) -> list[SecurityGroup]:
    """The groups of a server (404 if the caller cannot see it), in the server's order."""
    inst = instances.get(s, ctx, uuid)
    groups = list(s.scalars(select(SecurityGroup).where(
        SecurityGroup.project_id == inst.project_id)))
    by_name = {g.name: g for g in groups}
    by_id = {g.id: g for g in groups}
    found: list[SecurityGroup] = []
    for name in inst.security_groups or []:
        group = by_name.get(name) or by_id.get(name)
        if group is not None and group not in found:
            found.append(group)
    return found


def _ports(s: Session, uuid: str) -> list[Port]:
    return list(s.scalars(select(Port).where(Port.device_id == uuid)))


def add_group(cloud: Deps, ctx: RequestContext, uuid: str, name: str) -> None:
    """Nova's addSecurityGroup: the group (by name or id) on the server and all its ports."""

    def work(s: Session) -> None:
        inst = instances.get(s, ctx, uuid)
        group = _project_group(s, inst.project_id, name)
        names = list(inst.security_groups or ["default"])
        ports = _ports(s, uuid)
        if group.name in names and all(group.id in (p.security_groups or []) for p in ports):
            raise BadRequest(f"Security group {group.name} is already associated with the "
                             f"instance {uuid}")
        if group.name not in names:
            inst.security_groups = [*names, group.name]
        for port in ports:
            if group.id not in (port.security_groups or []):
                port.security_groups = [*(port.security_groups or []), group.id]
                port.updated_at = utcnow()
        inst.updated_at = utcnow()

    cloud.db.run(work)


def remove_group(cloud: Deps, ctx: RequestContext, uuid: str, name: str) -> None:
    """Nova's removeSecurityGroup: the group off the server and all its ports."""

    def work(s: Session) -> None:
        inst = instances.get(s, ctx, uuid)
        group = _project_group(s, inst.project_id, name)
        names = list(inst.security_groups or ["default"])
        if group.name not in names:
            raise BadRequest(f"Security group {group.name} is not associated with the "
                             f"instance {uuid}")
        inst.security_groups = [n for n in names if n != group.name]
        for port in _ports(s, uuid):
            if group.id in (port.security_groups or []):
                port.security_groups = [g for g in port.security_groups if g != group.id]
                port.updated_at = utcnow()
        inst.updated_at = utcnow()

    cloud.db.run(work)
