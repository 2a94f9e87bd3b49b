"""The resize workflow (resize and cold migrate), with confirm, revert and the automatic
confirm (the API's side: compute/resizing.py).

resize:  (active|stopped, resize_prep): the old claim moves to the migration's uuid; the
         scheduler claims the new flavor (same host allowed for a resize when
         `allow_resize_to_same_host`, never for a migrate) -> resize_migrating; a move to
         another host powers the source VM off (kept there for a revert); the destination's
         agent resizes the VM in place or builds it -> (resized, None): VERIFY_RESIZE.
confirm: (resized, resize_confirming): the source VM (another host) is removed, the old
         claim released -> active or stopped, as the server was.
revert:  (resized, resize_reverting): the destination VM (another host) is removed, the
         source VM gets the old flavor back, the new claim is released and the old one
         given back to the instance -> active or stopped, on the source host.
A failure before the move ends leaves the server on its source with its old claim.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions, l2peers, networking, specs, states
from cirrus.compute.lifecycle import transition
from cirrus.compute.resizing import MIGRATION, NEW_FLAVOR, OLD_FLAVOR, OLD_VM_STATE, OPEN
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Allocation, Image, Instance, Migration, utcnow
from cirrus.errors import is_transient
from cirrus.network import enforcement
from cirrus.scheduler import claims
from cirrus.scheduler.rpcapi import SelectDestination
from cirrus.virt.spec import root_disk

TASKS = (states.RESIZE_PREP, states.RESIZE_MIGRATING, states.RESIZE_CONFIRMING,
         states.RESIZE_REVERTING)
RESIZE_EVENT, CONFIRM_EVENT, REVERT_EVENT = (
    "compute_finish_resize", "compute_confirm_resize", "compute_revert_resize")
_NOT_DELETED = (Instance.deleted.is_(False),)


def _load(s: Session, uuid: str, task: str) -> tuple[Instance, Migration] | None:
    inst = s.scalar(select(Instance).where(Instance.uuid == uuid, *_NOT_DELETED))
    if inst is None or inst.task_state != task:
        return None
    mig = s.scalar(select(Migration).where(
        Migration.uuid == (inst.system_metadata or {}).get(MIGRATION, "")))
    if mig is None:
        return None
    return inst, mig


def _move_claim(s: Session, source: str, target: str) -> None:
    """The allocation of consumer `source` becomes `target`'s (none: nothing happens)."""
    s.execute(update(Allocation).where(Allocation.instance_uuid == source)
              .values(instance_uuid=target).execution_options(synchronize_session=False))


def _spec(s: Session, inst: Instance, flavor: dict[str, Any]) -> dict[str, Any]:
    """The instance's spec with `flavor`'s size."""
    spec = specs.build_spec(s, inst)
    image = s.get(Image, inst.image_ref) if inst.image_ref else None
    spec = dataclasses.replace(
        spec, vcpus=int(flavor["vcpus"]), memory_mb=int(flavor["ram"]),
        root_gb=int(flavor["disk"]),
        block_devices=[root_disk(image.id, int(flavor["disk"]))] if image else [])
    return spec.to_dict()


def _was_running(inst: Instance) -> bool:
    return (inst.system_metadata or {}).get(OLD_VM_STATE) != states.STOPPED


def _clear(inst: Instance) -> None:
    inst.system_metadata = {k: v for k, v in (inst.system_metadata or {}).items()
                            if k not in (OLD_FLAVOR, NEW_FLAVOR, OLD_VM_STATE, MIGRATION)}


# ---------------------------------------------------------------- resize


def resize_instance(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    uuid = payload["uuid"]

    def prepare(s: Session) -> SelectDestination | None:
        loaded = _load(s, uuid, states.RESIZE_PREP)
        if loaded is None:
            return None
        inst, mig = loaded
        new = (inst.system_metadata or {})[NEW_FLAVOR]
        _move_claim(s, uuid, mig.uuid)  # the old claim is kept, under the migration
        mig.status = "migrating"
        same_host_ok = (mig.migration_type == "resize"
                        and deps.settings.allow_resize_to_same_host)
        return SelectDestination(
            instance_uuid=uuid, vcpus=int(new["vcpus"]), memory_mb=int(new["ram"]),
            disk_gb=int(new["disk"]), availability_zone=inst.availability_zone,
            exclude_hosts=() if same_host_ok or not inst.host else (inst.host,),
            storage_pool=(inst.system_metadata or {}).get("storage_pool"),
            force_host=mig.dest_host, task=states.RESIZE_PREP)

    request = deps.db.run(prepare)
    if request is None:
        return
    try:
        choice = deps.scheduler.select_destination(ctx, request,
                                                   timeout=deps.settings.rpc_timeout)
    except (BusTimeout, RemoteError) as exc:
        if is_transient(exc):
            raise
        failed(deps, ctx, uuid, states.RESIZE_PREP, f"The scheduler did not answer: {exc}")
        return
    if choice.gone:
        return
    if choice.host is None:
        failed(deps, ctx, uuid, states.RESIZE_PREP,
               choice.public_reason or choice.reason or "No valid host was found.",
               details=choice.reason or "")
        return
    dest, node = choice.host, choice.node

    def record(s: Session) -> tuple[dict[str, Any], str | None, bool] | None:
        loaded = _load(s, uuid, states.RESIZE_MIGRATING)
        if loaded is None:
            return None
        inst, mig = loaded
        mig.dest_compute, mig.dest_node, mig.dest_host = dest, node, dest
        mig.status = "post-migrating"
        return (_spec(s, inst, (inst.system_metadata or {})[NEW_FLAVOR]), inst.host,
                _was_running(inst))

    prepared = deps.db.run(record)
    if prepared is None:
        return
    spec, source, running = prepared
    if source and source != dest:
        try:
            deps.agents.prepare_resize(ctx, source, uuid, timeout=deps.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            failed(deps, ctx, uuid, states.RESIZE_MIGRATING,
                   f"The source host did not power the server off: {exc}")
            return
    deps.agents.resize(ctx, dest, spec, states.RESIZE_MIGRATING, running)


def resize_result(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    if result["task"] == states.RESIZE_REVERTING:
        revert_result(deps, ctx, result)
        return
    uuid, host = result["uuid"], result["host"]
    if not result["ok"]:
        failed(deps, ctx, uuid, states.RESIZE_MIGRATING, result.get("error") or "unknown",
               details=result.get("details") or "")
        return

    def finish(s: Session) -> None:
        loaded = _load(s, uuid, states.RESIZE_MIGRATING)
        if loaded is None:
            return
        inst, mig = loaded
        if mig.dest_compute != host:
            return
        new = (inst.system_metadata or {})[NEW_FLAVOR]
        inst.flavor, inst.vcpus = new, int(new["vcpus"])
        inst.memory_mb, inst.root_gb = int(new["ram"]), int(new["disk"])
        inst.host, inst.node = host, mig.dest_node
        mig.status = "finished"
        transition(s, inst, "resize_finished", task_started_at=None, updated_at=utcnow(),
                   power_state=result.get("power_state") or states.NOSTATE)
        networking.bind_host(s, inst.nics, host, active=True)
        actions.record_event(s, uuid, ctx.request_id, RESIZE_EVENT, host, actions.SUCCESS)

    deps.db.run(finish)
    l2peers.push_instance(deps.db, deps.agents, ctx, uuid)  # l2: its ports moved
    _send_security_groups(deps, ctx, uuid)
    log.info("instance %s resized on %s, waiting for confirmation", uuid, host)


def failed(deps: WorkflowDeps, ctx: RequestContext, uuid: str, task: str, error: str,
           details: str = "") -> None:
    """A resize that did not happen: the new claim released, the old one back, the
    migration in error, the server where it was."""

    def work(s: Session) -> None:
        loaded = _load(s, uuid, task)
        if loaded is None:
            return
        inst, mig = loaded
        claims.release(s, uuid)
        _move_claim(s, mig.uuid, uuid)
        mig.status = "error"
        _clear(inst)
        transition(s, inst, "task_failed", task_started_at=None, updated_at=utcnow())
        actions.record_event(s, uuid, ctx.request_id, RESIZE_EVENT, mig.dest_compute,
                             actions.ERROR, traceback=f"{error}\n{details}" if details else error)
        actions.add_fault(s, uuid, 500, error, details, mig.dest_compute)

    # A source VM powered off for a move stays off; the agent's next report makes the
    # server SHUTOFF (stopped_by_guest), from where it can be started.
    deps.db.run(work)
    log.warning("resize of %s failed: %s", uuid, error)


# ---------------------------------------------------------------- confirm


def confirm(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    uuid = payload["uuid"]
    with deps.db.reader() as s:
        loaded = _load(s, uuid, states.RESIZE_CONFIRMING)
        if loaded is None:
            return
        inst, mig = loaded
        source, dest = mig.source_compute, mig.dest_compute
    if source and source != dest:
        try:
            deps.agents.offload(ctx, source, uuid, timeout=deps.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            log.warning("confirm of %s: the source %s did not remove the VM (%s); its next "
                        "report will", uuid, source, exc)

    def finish(s: Session) -> None:
        loaded = _load(s, uuid, states.RESIZE_CONFIRMING)
        if loaded is None:
            return
        inst, mig = loaded
        claims.release(s, mig.uuid)
        mig.status = "confirmed"
        event = "resize_confirmed" if _was_running(inst) else "resize_confirmed_stopped"
        _clear(inst)
        transition(s, inst, event, task_started_at=None, updated_at=utcnow())
        actions.record_event(s, uuid, ctx.request_id, CONFIRM_EVENT, source, actions.SUCCESS)

    deps.db.run(finish)
    log.info("resize of %s confirmed", uuid)


def confirm_due(deps: WorkflowDeps) -> int:
    """Confirm the resizes left unconfirmed for `resize_confirm_window` s (0: never)."""
    window = deps.settings.resize_confirm_window
    if window <= 0:
        return 0
    cutoff = utcnow() - dt.timedelta(seconds=window)
    with deps.db.reader() as s:
        due = list(s.scalars(select(Instance.uuid).join(
            Migration, Migration.instance_uuid == Instance.uuid).where(
            Instance.vm_state == states.RESIZED, Instance.task_state.is_(None), *_NOT_DELETED,
            Migration.status == "finished", Migration.updated_at < cutoff)).all())
    ctx = RequestContext.admin()
    def start(s: Session, uuid: str) -> int:
        return transition(s, uuid, "confirm_due", vm_state=states.RESIZED, task_state=None,
                          where=_NOT_DELETED, task_started_at=utcnow())

    for uuid in due:
        if deps.db.run(functools.partial(start, uuid=uuid)):
            log.info("resize of %s confirmed automatically after %g s", uuid, window)
            confirm(deps, ctx, {"uuid": uuid})
    return len(due)


# ---------------------------------------------------------------- revert


def revert(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    uuid = payload["uuid"]

    def prepare(s: Session) -> tuple[dict[str, Any], str, str | None, bool] | None:
        loaded = _load(s, uuid, states.RESIZE_REVERTING)
        if loaded is None:
            return None
        inst, mig = loaded
        mig.status = "reverting"
        old = (inst.system_metadata or {})[OLD_FLAVOR]
        return (_spec(s, inst, old), str(mig.source_compute), mig.dest_compute,
                _was_running(inst))

    prepared = deps.db.run(prepare)
    if prepared is None:
        return
    spec, source, dest, running = prepared
    if dest and dest != source:
        try:
            deps.agents.offload(ctx, dest, uuid, timeout=deps.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            log.warning("revert of %s: %s did not remove the VM (%s); its next report will",
                        uuid, dest, exc)
    deps.agents.resize(ctx, source, spec, states.RESIZE_REVERTING, running)


def revert_result(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    uuid, host = result["uuid"], result["host"]

    def finish(s: Session) -> None:
        loaded = _load(s, uuid, states.RESIZE_REVERTING)
        if loaded is None:
            return
        inst, mig = loaded
        if not result["ok"]:
            transition(s, inst, "task_failed", task_started_at=None)
            actions.record_event(s, uuid, ctx.request_id, REVERT_EVENT, host, actions.ERROR,
                                 traceback=result.get("details") or result.get("error"))
            return
        old = (inst.system_metadata or {})[OLD_FLAVOR]
        claims.release(s, uuid)
        _move_claim(s, mig.uuid, uuid)
        inst.flavor, inst.vcpus = old, int(old["vcpus"])
        inst.memory_mb, inst.root_gb = int(old["ram"]), int(old["disk"])
        inst.host, inst.node = mig.source_compute, mig.source_node
        mig.status = "reverted"
        event = "resize_reverted" if _was_running(inst) else "resize_reverted_stopped"
        _clear(inst)
        transition(s, inst, event, task_started_at=None, updated_at=utcnow(),
                   power_state=result.get("power_state") or states.NOSTATE)
        networking.bind_host(s, inst.nics, inst.host, active=True)
        actions.record_event(s, uuid, ctx.request_id, REVERT_EVENT, host, actions.SUCCESS)

    deps.db.run(finish)
    l2peers.push_instance(deps.db, deps.agents, ctx, uuid)  # l2: its ports moved back
    _send_security_groups(deps, ctx, uuid)
    log.info("resize of %s reverted", uuid)


def _send_security_groups(deps: WorkflowDeps, ctx: RequestContext, uuid: str) -> None:
    """The ports are bound where the server now runs: that host's filter state (sg)."""
    with deps.db.reader() as s:
        nics = s.scalar(select(Instance.nics).where(Instance.uuid == uuid)) or []
    enforcement.send_for_ports(deps.db, deps.agents, ctx, [n["port_id"] for n in nics])


# ---------------------------------------------------------------- the sweeper's hooks


def release_migration_claims(s: Session, uuid: str) -> None:
    """A deleted instance's old claims, kept under its migrations' uuids, go too; a
    migration under way ends in error (so reconcile removes a VM left at its other end)."""
    for mig in s.scalars(select(Migration).where(Migration.instance_uuid == uuid)).all():
        claims.release(s, mig.uuid)
        if mig.status in OPEN:
            mig.status = "error"


def redrive(deps: WorkflowDeps, ctx: RequestContext, uuid: str, task: str) -> None:
    if task == states.RESIZE_PREP:
        resize_instance(deps, ctx, {"uuid": uuid})
    elif task == states.RESIZE_CONFIRMING:
        confirm(deps, ctx, {"uuid": uuid})
    elif task == states.RESIZE_REVERTING:
        revert(deps, ctx, {"uuid": uuid})


def timed_out(deps: WorkflowDeps, ctx: RequestContext, uuid: str, task: str) -> None:
    if task in (states.RESIZE_PREP, states.RESIZE_MIGRATING):
        failed(deps, ctx, uuid, task, f"{task} timed out")
        return
    deps.db.run(lambda s: transition(s, uuid, "task_failed", task_state=task,
                                     where=_NOT_DELETED, task_started_at=None))
