"""Resize and cold migrate: the API's side (checks, the migration record, tasks), and the
os-migrations listing (comp-b).

`resize` (a new flavor) and `migrate` (admin; the same flavor on another host, 2.56: a
host asked for) record a Migration (status `pre-migrating`) and set the task
`resize_prep`; the conductor (`cirrus.compute.workflows.resize`) claims the new flavor on
a destination, moves the VM and ends in VERIFY_RESIZE (vm_state `resized`). While the
server is there, it holds two claims: the new one (the instance's) and the old one, kept
under the migration's uuid. `confirmResize` frees the old one; `revertResize` frees the
new one and brings the server back to its old flavor and host. A resize not confirmed
within `resize_confirm_window` seconds is confirmed by the conductor's periodic task.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout
from cirrus.compute import actions, flavors, instances, lifecycle, quotas, states
from cirrus.compute.creation import flavor_snapshot
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.context import RequestContext
from cirrus.db.models import Flavor, Instance, Migration, utcnow
from cirrus.errors import BadRequest, Conflict, NotFound
from cirrus.hosts import records

if TYPE_CHECKING:
    from cirrus.services import Deps

log = logging.getLogger(__name__)

# What a resize keeps on the instance until it is confirmed or reverted (system_metadata).
OLD_FLAVOR, NEW_FLAVOR, OLD_VM_STATE, MIGRATION = (
    "old_flavor", "new_flavor", "old_vm_state", "migration_uuid")


def _send(what: str, send: Callable[[], None]) -> None:
    try:
        send()
    except BusTimeout as exc:
        log.warning("%s left to the conductor's re-drive: %s", what, exc)


def _flavor_id(s: Session, flavorid: str) -> int | None:
    return s.scalar(select(Flavor.id).where(Flavor.flavorid == flavorid))


def _check_quota(s: Session, cloud: Deps, inst: Instance, new: dict) -> None:
    """403 (Nova's QuotaError) when the bigger flavor's cores or RAM break the project's."""
    limits = quotas.get_limits(s, cloud.settings, inst.project_id)
    usage = quotas.get_usage(s, inst.project_id)
    wanted = {"cores": int(new["vcpus"]) - inst.vcpus, "ram": int(new["ram"]) - inst.memory_mb}
    quotas.raise_overage([(r, d, usage[r], limits[r]) for r, d in wanted.items()
                          if d > 0 and limits[r] != quotas.UNLIMITED
                          and usage[r] + d > limits[r]])


def request_resize(cloud: Deps, ctx: RequestContext, uuid: str, flavor_ref: str | None, *,
                   host: str | None = None) -> None:
    """A resize to `flavor_ref`, or (None) a cold migrate, optionally to `host` (2.56)."""
    migrate = flavor_ref is None
    action = "migrate" if migrate else "resize"

    def work(s: Session) -> str:
        inst = instances.get(s, ctx, uuid)
        if inst.locked and not ctx.is_admin:
            raise Conflict(f"Instance {uuid} is locked")
        old = dict(inst.flavor or {})
        if migrate:
            new = old
        else:
            try:
                flavor = flavors.get_flavor_for_project(s, str(flavor_ref), ctx)
            except NotFound as exc:
                raise BadRequest(f"flavorRef: {exc.message}") from exc
            new = flavor_snapshot(flavor)
            if new["flavorid"] == old.get("flavorid"):
                raise BadRequest("When resizing, instances must change flavor!")
            if new["disk"] < old.get("disk", 0):
                raise BadRequest(f"flavorRef: Resize error: Unable to resize disk down "
                                 f"(flavor {new['flavorid']} has {new['disk']} GB, the "
                                 f"server {old.get('disk', 0)} GB).")
        states.check_action(action, uuid, inst.vm_state, inst.task_state)
        if not migrate:
            _check_quota(s, cloud, inst, new)
        if host is not None:
            if not records.has_compute_node(s, host=host, node=None):
                raise BadRequest(f"host: Compute host {host} could not be found.")
            if host == inst.host:
                raise BadRequest(f"host: The server is already on {host}; a migration "
                                 "needs another host.")
        migration = Migration(
            uuid=str(uuidlib.uuid4()), instance_uuid=uuid, project_id=inst.project_id,
            user_id=ctx.user_id, migration_type="migration" if migrate else "resize",
            status="pre-migrating", source_compute=inst.host, source_node=inst.node,
            dest_host=host, old_instance_type_id=_flavor_id(s, str(old.get("flavorid"))),
            new_instance_type_id=_flavor_id(s, str(new.get("flavorid"))))
        s.add(migration)
        sysmeta = {**(inst.system_metadata or {}), OLD_FLAVOR: old, NEW_FLAVOR: new,
                   OLD_VM_STATE: inst.vm_state, MIGRATION: migration.uuid}
        done = lifecycle.transition(
            s, uuid, action, vm_state=inst.vm_state, task_state=None,
            where=(Instance.deleted.is_(False),), task_started_at=utcnow(),
            updated_at=utcnow(), system_metadata=sysmeta)
        if not done:
            raise Conflict(f"Instance {uuid} changed state while the request was processed; "
                           "try again.")
        actions.start_action(s, ctx, uuid, action)
        return migration.uuid

    migration_uuid = cloud.db.run(work)
    _send(f"{action} of {uuid}",
          lambda: ConductorAPI(cloud.bus).resize_instance(ctx, uuid, migration_uuid))


def _decide(cloud: Deps, ctx: RequestContext, uuid: str, action: str) -> None:
    shown = "confirmResize" if action == "confirm_resize" else "revertResize"

    def work(s: Session) -> None:
        inst = instances.get(s, ctx, uuid)
        if inst.locked and not ctx.is_admin:
            raise Conflict(f"Instance {uuid} is locked")
        if inst.vm_state != states.RESIZED:
            raise Conflict(f"Instance has not been resized. (Cannot '{shown}' instance "
                           f"{uuid} while it is in vm_state {inst.vm_state})")
        states.check_action(action, uuid, inst.vm_state, inst.task_state)
        done = lifecycle.transition(
            s, uuid, action, vm_state=states.RESIZED, task_state=None,
            where=(Instance.deleted.is_(False),), task_started_at=utcnow(), updated_at=utcnow())
        if not done:
            raise Conflict(f"Instance {uuid} changed state while the request was processed; "
                           "try again.")
        actions.start_action(s, ctx, uuid, shown)

    cloud.db.run(work)
    api = ConductorAPI(cloud.bus)
    send = api.confirm_resize if action == "confirm_resize" else api.revert_resize
    _send(f"{shown} of {uuid}", lambda: send(ctx, uuid))


def request_confirm(cloud: Deps, ctx: RequestContext, uuid: str) -> None:
    _decide(cloud, ctx, uuid, "confirm_resize")


def request_revert(cloud: Deps, ctx: RequestContext, uuid: str) -> None:
    _decide(cloud, ctx, uuid, "revert_resize")


OPEN = ("pre-migrating", "migrating", "post-migrating", "finished", "confirming", "reverting")


def moving_on(s: Session, host: str) -> set[str]:
    """The instances with a resize or migration under way from or to `host`: their VM may
    be there while the instance's host is the other end (reconcile leaves it alone)."""
    return set(s.scalars(select(Migration.instance_uuid).where(
        Migration.status.in_(OPEN),
        (Migration.source_compute == host) | (Migration.dest_compute == host))).all())


# ---------------------------------------------------------------- os-migrations


@dataclass(frozen=True)
class MigrationFilter:
    instance_uuid: str | None = None
    status: str | None = None
    host: str | None = None  # source or destination
    migration_type: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    limit: int | None = None
    marker: str | None = None
    changes_since: dt.datetime | None = None  # updated (or created) at or after
    changes_before: dt.datetime | None = None  # updated (or created) at or before


def list_migrations(cloud: Deps, f: MigrationFilter) -> list[Migration]:
    """Newest first (created_at, id descending), as Nova's list; `marker` is a uuid."""
    with cloud.db.reader() as s:
        q = select(Migration)
        if f.instance_uuid:
            q = q.where(Migration.instance_uuid == f.instance_uuid)
        if f.status:
            q = q.where(Migration.status == f.status)
        if f.host:
            q = q.where((Migration.source_compute == f.host) | (Migration.dest_compute == f.host))
        if f.migration_type:
            q = q.where(Migration.migration_type == f.migration_type)
        if f.project_id:
            q = q.where(Migration.project_id == f.project_id)
        if f.user_id:
            q = q.where(Migration.user_id == f.user_id)
        changed = func.coalesce(Migration.updated_at, Migration.created_at)
        if f.changes_since is not None:
            q = q.where(changed >= f.changes_since)
        if f.changes_before is not None:
            q = q.where(changed <= f.changes_before)
        if f.marker:
            marker = s.scalar(select(Migration).where(Migration.uuid == f.marker))
            if marker is None:
                raise BadRequest(f"marker: Marker {f.marker} could not be found.")
            q = q.where(Migration.id < marker.id)
        q = q.order_by(Migration.id.desc())
        if f.limit is not None:
            q = q.limit(f.limit)
        rows = list(s.scalars(q).all())
        for row in rows:
            s.expunge(row)
        return rows
