"""Server actions of issue 13 (comp-a): rebuild, lock and unlock, reset-state, restore and
force-delete of a soft-deleted server. Pause, unpause, suspend, resume and the soft delete
itself are power tasks (`instances.request_power_action`, `instances.request_delete`).
Knows nothing of HTTP."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from cirrus import build_secrets
from cirrus.compute import actions, creation, instances, keypairs, lifecycle, states
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.context import RequestContext
from cirrus.db.models import Instance, utcnow
from cirrus.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable

if TYPE_CHECKING:
    from cirrus.services import Deps

log = logging.getLogger(__name__)

LOCKED_REASON = "locked_reason"  # in system_metadata, as Nova keeps it
UNSET = object()


def check_unlocked(ctx: RequestContext, inst: Instance) -> None:
    """Nova's check_instance_lock: a locked server refuses non-admins with 409."""
    if inst.locked and not ctx.is_admin:
        raise Conflict(f"Instance {inst.uuid} is locked")


@dataclass
class RebuildRequest:
    image_ref: str
    name: str | None = None
    description: object = UNSET  # 2.19+; None clears it
    metadata: dict | None = None
    admin_pass: str | None = None
    injected_files: list[tuple[str, bytes]] = field(default_factory=list)
    key_name: object = UNSET  # 2.54+; None removes the key
    user_data: object = UNSET  # 2.57+; None removes it


def request_rebuild(cloud: Deps, ctx: RequestContext, uuid: str, req: RebuildRequest) -> None:
    """Check the transition, record what the server is rebuilt as, set `rebuilding` and
    tell the conductor. The ports and addresses stay; the disk and config drive are new."""
    settings = cloud.settings
    try:
        sealed = build_secrets.seal(settings, uuid, build_secrets.BuildSecrets(
            admin_pass=req.admin_pass, injected_files=list(req.injected_files)))
    except (build_secrets.BuildSecretsError, OSError) as exc:
        log.error("cannot seal build secrets: %s", exc)
        raise ServiceUnavailable("The server cannot be rebuilt: the build secrets key of "
                                 "this API is unusable (see its log).") from exc

    def work(s: Session) -> None:
        inst = instances.get(s, ctx, uuid)
        check_unlocked(ctx, inst)
        states.check_action("rebuild", uuid, inst.vm_state, inst.task_state)
        image = creation._image_for(s, ctx, req.image_ref)
        if (image.min_disk or 0) > (inst.root_gb or 0) and inst.root_gb:
            raise BadRequest(f"Flavor's disk is too small for requested image. Flavor disk "
                             f"is {inst.root_gb} GB, minimum disk is {image.min_disk} GB.")
        values: dict = {"image_ref": image.id, "task_started_at": utcnow(),
                        "updated_at": utcnow()}
        if req.name is not None:
            values["display_name"] = req.name
        if req.description is not UNSET:
            values["display_description"] = req.description
        if req.metadata is not None:
            values["metadata_items"] = dict(req.metadata)
        if req.key_name is not UNSET:
            if req.key_name is None:
                values["key_name"] = values["key_data"] = None
            else:
                try:
                    key = keypairs.get_keypair(s, str(ctx.user_id), str(req.key_name))
                except NotFound as exc:
                    raise BadRequest(f"Invalid key_name provided: {req.key_name}") from exc
                values["key_name"], values["key_data"] = key.name, key.public_key
        if req.user_data is not UNSET:
            values["user_data"] = req.user_data
        spec = instances.without_build_secrets(inst.request_spec)
        if sealed:
            spec[build_secrets.SEALED] = sealed
        values["request_spec"] = spec
        done = lifecycle.transition(s, uuid, "rebuild", vm_state=inst.vm_state,
                                    task_state=inst.task_state,
                                    where=(Instance.deleted.is_(False),), **values)
        if not done:
            raise Conflict(f"Instance {uuid} changed state while the request was processed; "
                           "try again.")
        actions.start_action(s, ctx, uuid, "rebuild")

    cloud.db.run(work)
    instances._send_task(f"rebuild of {uuid}", lambda: ConductorAPI(cloud.bus).power_action(
        ctx, uuid, states.REBUILDING))


def set_lock(cloud: Deps, ctx: RequestContext, uuid: str, locked: bool,
             reason: str | None = None) -> None:
    """Lock (with a reason from 2.73) or unlock. An owner may not unlock what an admin
    locked (Nova's unlock_override: 403); both are idempotent."""
    def work(s: Session) -> None:
        inst = instances.get(s, ctx, uuid)
        meta = dict(inst.system_metadata or {})
        if locked:
            if inst.locked:
                return
            inst.locked = True
            inst.locked_by = "admin" if ctx.is_admin else "owner"
            if reason is not None:
                meta[LOCKED_REASON] = reason
            else:
                meta.pop(LOCKED_REASON, None)
            action = "lock"
        else:
            if not inst.locked:
                return
            if inst.locked_by == "admin" and not ctx.is_admin:
                raise Forbidden("Policy doesn't allow os_compute_api:os-lock-server:unlock:"
                                "unlock_override to be performed.")
            inst.locked, inst.locked_by = False, None
            meta.pop(LOCKED_REASON, None)
            action = "unlock"
        inst.system_metadata = meta
        inst.updated_at = utcnow()
        actions.start_action(s, ctx, uuid, action)

    cloud.db.run(work)


def locked_reason(inst: Instance) -> str | None:
    return (inst.system_metadata or {}).get(LOCKED_REASON) if inst.locked else None


def reset_state(cloud: Deps, ctx: RequestContext, uuid: str, state: str) -> None:
    """os-resetState (admins): `active` or `error`, the task cleared, whatever it was."""
    event = states.RESET_STATES[state]

    def work(s: Session) -> None:
        inst = instances.get(s, ctx, uuid)
        lifecycle.transition(s, uuid, event, where=(Instance.deleted.is_(False),),
                             task_started_at=None, updated_at=utcnow())
        actions.start_action(s, ctx, inst.uuid, "resetState")

    cloud.db.run(work)


def restore(cloud: Deps, ctx: RequestContext, uuid: str) -> None:
    """Bring a soft-deleted server back: its guest is started again."""
    instances.request_power_action(cloud, ctx, uuid, "restore")


def force_delete(cloud: Deps, ctx: RequestContext, uuid: str) -> None:
    """Delete a soft-deleted server now."""
    with cloud.db.reader() as s:
        inst = instances.get(s, ctx, uuid)
        if inst.vm_state != states.SOFT_DELETED:
            raise Conflict(f"Cannot 'forceDelete' instance {uuid} while it is in vm_state "
                           f"{inst.vm_state}")
    instances.request_delete(cloud, ctx, uuid, force=True)
