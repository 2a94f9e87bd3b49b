"""Servers: the writes and queries behind the compute API. Knows nothing of HTTP."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from cirrus import build_secrets
from cirrus.agent.rpcapi import AgentAPI
from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import (
    actions,
    lifecycle,
    quotas,
    states,
)
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.context import RequestContext
from cirrus.db.models import (
    Instance,
    IPAllocation,
    Port,
    utcnow,
)
from cirrus.errors import (
    BadRequest,
    Conflict,
    NotFound,
)
from cirrus.identity.policy import owns

if TYPE_CHECKING:
    from cirrus.services import Deps

log = logging.getLogger(__name__)


# What the guest is given once, on its config drive: sealed at the API with a key outside the
# database (cirrus.build_secrets), kept in the instance's request_spec only as that
# token and only until it is built (the conductor erases it then): never shown by the API,
# never logged. The plain keys are those of specs written before the secrets were sealed.
BUILD_SECRETS = (build_secrets.SEALED, "admin_pass", "injected_files")


def without_build_secrets(request_spec: dict | None) -> dict:
    return {k: v for k, v in (request_spec or {}).items() if k not in BUILD_SECRETS}

def sanitize_hostname(name: str) -> str:
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return host[:63] or "server"


def get(s: Session, ctx: RequestContext, uuid: str, *, include_deleted: bool = False) -> Instance:
    inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
    if inst is None or (inst.deleted and not include_deleted) or not owns(ctx, inst.project_id):
        raise NotFound(f"Instance {uuid} could not be found.")
    return inst


@dataclass
class ListFilters:
    all_tenants: bool = False
    project_id: str | None = None
    name: str | None = None
    status: str | None = None
    host: str | None = None
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    image: str | None = None
    flavor: str | None = None
    reservation_id: str | None = None
    availability_zone: str | None = None
    deleted: bool = False
    limit: int | None = None
    marker: str | None = None
    sort_key: str = "created_at"
    sort_dir: str = "desc"
    # Server tags (2.26): all of `tags`, any of `tags_any`, not all of `not_tags`, none of
    # `not_tags_any`.
    tags: list[str] | None = None
    tags_any: list[str] | None = None
    not_tags: list[str] | None = None
    not_tags_any: list[str] | None = None
    user_id: str | None = None
    key_name: str | None = None
    # Part of a fixed IPv4 (`ip`) or IPv6 (`ip6`) address of the server, taken literally (as
    # Nova asks Neutron with ip_address_substr: "10.1.1.1" also finds "10.1.1.10").
    ip: str | None = None
    ip6: str | None = None

    def matches_tags(self, inst: Instance) -> bool:
        have = set(inst.tags or [])
        return ((not self.tags or set(self.tags) <= have)
                and (not self.tags_any or bool(have & set(self.tags_any)))
                and (not self.not_tags or not set(self.not_tags) <= have)
                and (not self.not_tags_any or not have & set(self.not_tags_any)))

    @property
    def by_tags(self) -> bool:
        return bool(self.tags or self.tags_any or self.not_tags or self.not_tags_any)


SORT_KEYS = {"created_at": Instance.created_at, "updated_at": Instance.updated_at,
             "display_name": Instance.display_name, "uuid": Instance.uuid,
             "vm_state": Instance.vm_state, "host": Instance.host, "launched_at": Instance.launched_at,
             "task_state": Instance.task_state, "power_state": Instance.power_state}


def list_(s: Session, ctx: RequestContext, f: ListFilters) -> list[Instance]:
    q = select(Instance)
    if not (f.all_tenants and ctx.is_admin):
        q = q.where(Instance.project_id == ctx.project_id)
    elif f.project_id:
        q = q.where(Instance.project_id == f.project_id)
    if f.changes_since is not None or f.changes_before is not None or f.deleted:
        if f.changes_since is not None:
            q = q.where(Instance.updated_at >= f.changes_since)
        if f.changes_before is not None:
            q = q.where(Instance.updated_at <= f.changes_before)
        if f.deleted and f.changes_since is None:
            q = q.where(Instance.deleted.is_(True))
    else:
        q = q.where(Instance.deleted.is_(False))
    if f.status:
        vm_states, task_states = states.STATUS_FILTERS[f.status]
        q = q.where(Instance.vm_state.in_(vm_states))
        if task_states is not None:
            known = [t for t in task_states if t is not None]
            cond: ColumnElement[bool] | None = Instance.task_state.in_(known) if known else None
            if None in task_states:
                unset = Instance.task_state.is_(None)
                cond = or_(unset, cond) if cond is not None else unset
            if cond is not None:  # every filter names a task state (states.STATUS_FILTERS)
                q = q.where(cond)
    if f.host and ctx.is_admin:
        q = q.where(Instance.host == f.host)
    if f.image:
        q = q.where(Instance.image_ref == f.image.rstrip("/").rsplit("/", 1)[-1])
    if f.reservation_id:
        q = q.where(Instance.reservation_id == f.reservation_id)
    if f.availability_zone:
        q = q.where(Instance.availability_zone == f.availability_zone)
    if f.user_id:
        q = q.where(Instance.user_id == f.user_id)
    if f.key_name:
        q = q.where(Instance.key_name == f.key_name)
    for part, v6 in ((f.ip, False), (f.ip6, True)):
        if part:
            family = (IPAllocation.ip_address.contains(":") if v6
                      else ~IPAllocation.ip_address.contains(":"))
            q = q.where(Instance.uuid.in_(
                select(Port.device_id).join(IPAllocation, IPAllocation.port_id == Port.id)
                .where(family, IPAllocation.ip_address.contains(part, autoescape=True))))
    column = SORT_KEYS.get(f.sort_key, Instance.created_at)
    descending = f.sort_dir == "desc"
    q = q.order_by(column.desc() if descending else column.asc(),
                   Instance.id.desc() if descending else Instance.id.asc())
    name_re = None
    if f.name:
        try:
            name_re = re.compile(f.name)
        except re.error as exc:
            raise BadRequest(f"Invalid name filter {f.name!r}: {exc}") from exc
    if f.marker:
        marker = s.scalar(select(Instance).where(Instance.uuid == f.marker))
        if marker is None or not owns(ctx, marker.project_id):
            raise BadRequest(f"marker [{f.marker}] not found")
        mval = getattr(marker, column.key)
        if descending:
            q = q.where(or_(column < mval, and_(column == mval, Instance.id < marker.id)))
        else:
            q = q.where(or_(column > mval, and_(column == mval, Instance.id > marker.id)))
    # Name patterns, flavors and tags are matched here, before the page is cut.
    in_python = name_re is not None or bool(f.flavor) or f.by_tags
    if not in_python and f.limit is not None:
        q = q.limit(f.limit)
    rows = list(s.scalars(q))
    if in_python:
        rows = [r for r in rows
                if (name_re is None or name_re.search(r.display_name or ""))
                and (not f.flavor or (r.flavor or {}).get("flavorid") == f.flavor)
                and f.matches_tags(r)]
        if f.limit is not None:
            rows = rows[: f.limit]
    return rows


def update_fields(cloud: Deps, ctx: RequestContext, uuid: str, values: dict) -> None:
    def work(s: Session) -> None:
        inst = get(s, ctx, uuid)
        for key, value in values.items():
            setattr(inst, key, value)
        if "display_name" in values and values["display_name"]:
            inst.hostname = inst.hostname or sanitize_hostname(values["display_name"])
        inst.updated_at = utcnow()

    cloud.db.run(work)


def set_metadata(cloud: Deps, ctx: RequestContext, uuid: str, items: dict, *, replace: bool,
                 delete_key: str | None = None) -> dict:
    settings = cloud.settings

    def work(s: Session) -> dict:
        inst = get(s, ctx, uuid)
        if inst.task_state == states.DELETING:
            raise Conflict(f"Cannot change metadata of instance {uuid} while it is being deleted")
        current = {} if replace else dict(inst.metadata_items or {})
        if delete_key is not None:
            if delete_key not in current:
                raise NotFound(f"Metadata item was not found: {delete_key}")
            del current[delete_key]
        current.update(items)
        limit = quotas.get_limits(s, settings, inst.project_id)["metadata_items"]
        if limit != quotas.UNLIMITED and len(current) > limit:
            raise quotas.QuotaExceeded(f"Quota exceeded for metadata_items: {len(current)} "
                                       f"items, {limit} allowed.")
        inst.metadata_items = current
        inst.updated_at = utcnow()
        return current

    return cloud.db.run(work)


def request_delete(cloud: Deps, ctx: RequestContext, uuid: str, *, force: bool = False) -> None:
    """Delete; with `reclaim_instance_interval` set, a server on a host is soft-deleted
    instead (its guest stopped, kept until the sweeper reclaims it); `force`: now."""
    reclaim = cloud.settings.reclaim_instance_interval > 0 and not force

    def work(s: Session) -> bool:
        inst = get(s, ctx, uuid)
        if inst.locked and not ctx.is_admin:
            raise Conflict(f"Instance {uuid} is locked")
        if reclaim and inst.host and lifecycle.allowed("soft_delete",  # comp-a
                                                       (inst.vm_state, inst.task_state)):
            return True
        states.check_action("delete", uuid, inst.vm_state, inst.task_state)
        lifecycle.transition(s, uuid, "delete", where=(Instance.deleted.is_(False),),
                             task_started_at=utcnow(), updated_at=utcnow())
        actions.start_action(s, ctx, uuid, "forceDelete" if force else "delete")
        return False

    if cloud.db.run(work):
        request_power_action(cloud, ctx, uuid, "soft_delete")
        return
    _send_task(f"delete of {uuid}", lambda: ConductorAPI(cloud.bus).delete_instance(ctx, uuid))


def _send_task(task: str, send: Callable[[], None]) -> None:
    """Tell the conductor about a recorded task. If no broker takes the message, the task
    stays recorded and the conductor's sweeper sends it again after `task_redrive_after`:
    the request was accepted, so it is not undone."""
    try:
        send()
    except BusTimeout as exc:
        log.warning("%s left to the conductor's re-drive: %s", task, exc)


def request_power_action(cloud: Deps, ctx: RequestContext, uuid: str, action: str) -> None:
    """stop, start, reboot, reboot_hard, pause, unpause, suspend, resume, soft_delete,
    restore: check the transition, set the task, tell the conductor."""
    def work(s: Session) -> str:
        inst = get(s, ctx, uuid)
        if inst.locked and not ctx.is_admin:
            raise Conflict(f"Instance {uuid} is locked")
        transition = states.check_action(action, uuid, inst.vm_state, inst.task_state)
        extra = {"deleted_at": utcnow()} if action == "soft_delete" else {}  # comp-a
        done = lifecycle.transition(
            s, uuid, action, vm_state=inst.vm_state, task_state=inst.task_state,
            where=(Instance.deleted.is_(False),), task_started_at=utcnow(), updated_at=utcnow(),
            **extra)
        if not done:
            raise Conflict(f"Instance {uuid} changed state while the request was processed; "
                           "try again.")
        actions.start_action(s, ctx, uuid, "reboot" if action.startswith("reboot")
                             else "delete" if action == "soft_delete" else action)
        return transition.task_state

    task = cloud.db.run(work)
    _send_task(f"{task} of {uuid}",
               lambda: ConductorAPI(cloud.bus).power_action(ctx, uuid, task))


def console_output(cloud: Deps, ctx: RequestContext, uuid: str, length: int | None) -> str:
    with cloud.db.reader() as s:
        inst = get(s, ctx, uuid)
        host = inst.host
        if inst.vm_state == states.BUILDING or not host:
            raise Conflict(f"Instance {uuid} is not ready: it has no console yet.")
    try:
        return AgentAPI(cloud.bus).console_output(ctx, host, uuid, length)
    except (BusTimeout, RemoteError) as exc:
        raise Conflict(f"The console of instance {uuid} is not available: {exc}") from exc
