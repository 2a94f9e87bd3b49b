"""The shelve workflows: shelve, offload and unshelve (the API's side: compute/shelving.py).

shelve:   (active|stopped, shelving) -> the agent powers off and writes the disk -> the
          conductor imports it into the shelved image -> (shelved, None); with
          `shelved_offload_time` 0 the offload follows at once.
offload:  (shelved, shelving_offloading) -> the agent removes the VM -> claim released,
          ports unbound, no host -> (shelved_offloaded, None).
unshelve: (shelved, unshelving) -> a power-on (workflows.power ends it);
          (shelved_offloaded, unshelving) -> the scheduler claims a host -> the agent
          builds from the shelved image -> (active, None), the image deleted.
A failure leaves the server where it was, with the task cleared and an error event.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions, l2peers, networking, snapshots, specs, states
from cirrus.compute.lifecycle import transition
from cirrus.compute.shelving import (
    AT_KEY,
    HOST_KEY,
    IMAGE_KEY,
    OFFLOAD_EVENT,
    SHELVE_EVENT,
    UNSHELVE_EVENT,
)
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Image, Instance, utcnow
from cirrus.errors import is_transient
from cirrus.network import enforcement
from cirrus.scheduler import claims
from cirrus.scheduler.rpcapi import SelectDestination
from cirrus.storage.filestore import FileStore, snapshot_staging_name

TASKS = (states.SHELVING, states.SHELVING_OFFLOADING, states.UNSHELVING)
_NOT_DELETED = (Instance.deleted.is_(False),)


def _load(deps: WorkflowDeps, uuid: str, task: str) -> Instance | None:
    with deps.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted or inst.task_state != task:
            return None
        s.expunge(inst)
        return inst


def _fail(s: Session, ctx: RequestContext, uuid: str, task: str, event: str,
          event_host: str | None, error: str, **values: Any) -> bool:
    """End `task` with task_failed (setting `values` too) and record the error event."""
    done = transition(s, uuid, "task_failed", task_state=task, where=_NOT_DELETED,
                      task_started_at=None, **values)
    if done:
        actions.record_event(s, uuid, ctx.request_id, event, event_host, actions.ERROR,
                             traceback=error)
    return bool(done)


# ---------------------------------------------------------------- shelve


def shelve_instance(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    inst = _load(deps, payload["uuid"], states.SHELVING)
    if inst is None:
        return
    image_id = (inst.system_metadata or {}).get(IMAGE_KEY) or payload.get("image_id")
    result = {"uuid": inst.uuid, "image_id": image_id, "host": inst.host,
              "file": snapshot_staging_name(str(image_id))}
    if not inst.host or not image_id:
        shelve_result(deps, ctx, {**result, "ok": False, "error": "The instance has no host."})
        return
    deps.agents.shelve(ctx, inst.host, inst.uuid, str(image_id), str(result["file"]))


def shelve_result(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    uuid, image_id, host = result["uuid"], result["image_id"], result.get("host")
    store = FileStore(deps.settings.effective_image_dir)
    error = snapshots.import_result(deps.db, store, ctx, result, "shelved disk")
    power = result.get("power_state")

    def finish(s: Session) -> bool:
        extra = {} if power is None else {"power_state": power}
        if error is not None:
            inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
            sysmeta = {k: v for k, v in ((inst.system_metadata if inst else None) or {}).items()
                       if k != IMAGE_KEY}
            _fail(s, ctx, uuid, states.SHELVING, SHELVE_EVENT, host, error,
                  system_metadata=sysmeta, **extra)
            return False
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid, *_NOT_DELETED)
                        .with_for_update())
        if inst is None or inst.task_state != states.SHELVING:
            return False
        inst.system_metadata = {**(inst.system_metadata or {}), IMAGE_KEY: image_id,
                                AT_KEY: utcnow().isoformat(), HOST_KEY: inst.host}
        transition(s, inst, "shelved", task_started_at=None, updated_at=utcnow(),
                   power_state=states.SHUTDOWN if power is None else power)
        actions.record_event(s, uuid, ctx.request_id, SHELVE_EVENT, host, actions.SUCCESS)
        return True

    if error is not None:
        log.warning("shelve of %s failed: %s", uuid, error)
        snapshots.discard_image(deps.db, store, image_id)
    shelved = deps.db.run(finish)
    if shelved:
        log.info("instance %s shelved into image %s", uuid, image_id)
        if deps.settings.shelved_offload_time == 0:
            _offload_now(deps, ctx, uuid)


# ---------------------------------------------------------------- offload


def _offload_now(deps: WorkflowDeps, ctx: RequestContext, uuid: str) -> None:
    moved = deps.db.run(lambda s: transition(
        s, uuid, "offload_due", vm_state=states.SHELVED, task_state=None, where=_NOT_DELETED,
        task_started_at=utcnow()))
    if moved:
        offload(deps, ctx, {"uuid": uuid})


def offload_due(deps: WorkflowDeps) -> int:
    """Offload the servers shelved longer than `shelved_offload_time` (the sweeper calls it);
    returns how many."""
    wait = deps.settings.shelved_offload_time
    if wait < 0:
        return 0
    cutoff = utcnow() - dt.timedelta(seconds=wait)
    with deps.db.reader() as s:
        rows = s.execute(select(Instance.uuid, Instance.system_metadata).where(
            Instance.vm_state == states.SHELVED, Instance.task_state.is_(None),
            *_NOT_DELETED)).all()
    due = []
    for uuid, sysmeta in rows:
        try:
            at = dt.datetime.fromisoformat((sysmeta or {}).get(AT_KEY) or "")
        except ValueError:
            at = None
        if at is None or at.replace(tzinfo=None) <= cutoff.replace(tzinfo=None):
            due.append(uuid)
    ctx = RequestContext.admin()
    for uuid in due:
        _offload_now(deps, ctx, uuid)
    return len(due)


def offload(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    inst = _load(deps, payload["uuid"], states.SHELVING_OFFLOADING)
    if inst is None:
        return
    uuid, host = inst.uuid, inst.host
    if host:
        try:
            deps.agents.offload(ctx, host, uuid, timeout=deps.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            log.warning("offload of %s from %s failed: %s", uuid, host, exc)
            why = f"The host did not remove the VM: {exc}"
            deps.db.run(lambda s: _fail(s, ctx, uuid, states.SHELVING_OFFLOADING, OFFLOAD_EVENT,
                                        host, why))
            return

    def finish(s: Session) -> None:
        nics = s.scalar(select(Instance.nics).where(Instance.uuid == uuid))
        done = transition(s, uuid, "offloaded", task_state=states.SHELVING_OFFLOADING,
                          where=_NOT_DELETED, host=None, node=None, task_started_at=None,
                          power_state=states.NOSTATE, updated_at=utcnow())
        if done:
            claims.release(s, uuid)
            networking.bind_host(s, nics or [], None)
            actions.record_event(s, uuid, ctx.request_id, OFFLOAD_EVENT, host, actions.SUCCESS)

    deps.db.run(finish)
    l2peers.push_instance(deps.db, deps.agents, ctx, uuid)  # l2: its ports left the host
    log.info("instance %s offloaded from %s", uuid, host)


# ---------------------------------------------------------------- unshelve


def unshelve_instance(deps: WorkflowDeps, ctx: RequestContext,
                      payload: dict[str, Any]) -> None:
    inst = _load(deps, payload["uuid"], states.UNSHELVING)
    if inst is None:
        return
    uuid = inst.uuid
    if inst.vm_state == states.SHELVED:
        if not inst.host:
            unshelve_failed(deps, ctx, uuid, None, "The instance has no host.")
            return
        deps.agents.power(ctx, inst.host, uuid, states.UNSHELVING, "start")
        return
    if inst.host:  # scheduled already (a re-drive): send the build again
        _spawn(deps, ctx, uuid, inst.host)
        return
    pool = (inst.system_metadata or {}).get("storage_pool")
    request = SelectDestination(
        instance_uuid=uuid, vcpus=inst.vcpus, memory_mb=inst.memory_mb, disk_gb=inst.root_gb,
        availability_zone=inst.availability_zone, storage_pool=pool, task=states.UNSHELVING)
    try:
        choice = deps.scheduler.select_destination(ctx, request,
                                                   timeout=deps.settings.rpc_timeout)
    except (BusTimeout, RemoteError) as exc:
        if is_transient(exc):
            raise
        unshelve_failed(deps, ctx, uuid, None, f"The scheduler did not answer: {exc}")
        return
    if choice.gone:
        return
    if choice.host is None:
        unshelve_failed(deps, ctx, uuid, None, choice.public_reason or choice.reason or "",
                        details=choice.reason or "")
        return
    _spawn(deps, ctx, uuid, choice.host)


def _spawn(deps: WorkflowDeps, ctx: RequestContext, uuid: str, host: str) -> None:
    def prepare(s: Session) -> dict[str, Any] | None:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid, *_NOT_DELETED))
        if inst is None or inst.task_state != states.UNSHELVING:
            return None
        image = s.get(Image, (inst.system_metadata or {}).get(IMAGE_KEY) or "")
        if image is None or image.status != "active":
            return None
        props = image.properties or {}
        kernel = s.get(Image, props["kernel_id"]) if props.get("kernel_id") else None
        ramdisk = s.get(Image, props["ramdisk_id"]) if props.get("ramdisk_id") else None
        networking.bind_host(s, inst.nics, host)
        return specs.with_volumes(s, specs.spec_of(  # issue 15: with its volumes
            inst, image, kernel, ramdisk, networking.build_nics(s, inst.nics))).to_dict()

    spec = deps.db.run(prepare)
    if spec is None:
        unshelve_failed(deps, ctx, uuid, host, "The shelved image is gone or not active.")
        return
    l2peers.push_instance(deps.db, deps.agents, ctx, uuid)  # l2: ports bound, before boot
    # The new host's security groups before the spawn (issue 14, sg).
    enforcement.send_for_ports(deps.db, deps.agents, ctx,
                               [n["port_id"] for n in spec["nics"]], {host})
    deps.agents.spawn(ctx, host, spec, task=states.UNSHELVING)


def unshelve_result(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    """The agent's spawn_result of an unshelve (its `task` is unshelving)."""
    uuid, host = result["uuid"], result["host"]
    if not result["ok"]:
        unshelve_failed(deps, ctx, uuid, host, result.get("error") or "unknown error",
                        details=result.get("details") or "")
        return

    def finish(s: Session) -> str | None | bool:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid, *_NOT_DELETED,
                                               Instance.host == host).with_for_update())
        if inst is None or inst.task_state != states.UNSHELVING:
            return False
        sysmeta = dict(inst.system_metadata or {})
        image_id: str | None = sysmeta.pop(IMAGE_KEY, None)
        sysmeta.pop(AT_KEY, None)
        sysmeta.pop(HOST_KEY, None)
        inst.system_metadata = sysmeta
        transition(s, inst, "unshelved", task_started_at=None, updated_at=utcnow(),
                   power_state=result.get("power_state") or states.RUNNING)
        networking.bind_host(s, inst.nics, host, active=True)
        actions.record_event(s, uuid, ctx.request_id, UNSHELVE_EVENT, host, actions.SUCCESS)
        return image_id

    outcome = deps.db.run(finish)
    if outcome is False:
        deps.agents.destroy(ctx, host, uuid)  # deleted (or moved on) meanwhile: not wanted
        return
    log.info("instance %s unshelved on %s", uuid, host)
    if isinstance(outcome, str):  # as Nova: the shelved image goes once it is not needed
        _delete_image(deps, outcome)


def forget_shelved_image(deps: WorkflowDeps, uuid: str) -> None:
    """The server is no longer shelved (unshelved on its host, or deleted): its shelved
    image goes, as in Nova, and system_metadata forgets it."""

    def work(s: Session) -> str | None:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        sysmeta = dict((inst.system_metadata if inst is not None else None) or {})
        image_id = sysmeta.pop(IMAGE_KEY, None)
        if inst is None or image_id is None or inst.vm_state in (
                states.SHELVED, states.SHELVED_OFFLOADED):
            return None
        sysmeta.pop(AT_KEY, None)
        sysmeta.pop(HOST_KEY, None)
        inst.system_metadata = sysmeta
        return str(image_id)

    image_id = deps.db.run(work)
    if image_id is not None:
        _delete_image(deps, image_id)


def _delete_image(deps: WorkflowDeps, image_id: str) -> None:
    def work(s: Session) -> str | None:
        image = s.get(Image, image_id, with_for_update=True)
        if image is None:
            return None
        location = image.location
        s.delete(image)
        return location

    FileStore(deps.settings.effective_image_dir).delete(deps.db.run(work))


def unshelve_failed(deps: WorkflowDeps, ctx: RequestContext, uuid: str, host: str | None,
                    error: str, details: str = "") -> None:
    """Back where it was: the claim released and the host cleared for an offloaded one."""

    def work(s: Session) -> None:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid, *_NOT_DELETED))
        if inst is None or inst.task_state != states.UNSHELVING:
            return
        values: dict[str, Any] = {}
        if inst.vm_state == states.SHELVED_OFFLOADED:
            claims.release(s, uuid)
            networking.bind_host(s, inst.nics, None)
            values = {"host": None, "node": None, "power_state": states.NOSTATE}
        if _fail(s, ctx, uuid, states.UNSHELVING, UNSHELVE_EVENT, host,
                 f"{error}\n{details}" if details else error, **values):
            actions.add_fault(s, uuid, 500, error, details, host)

    deps.db.run(work)
    l2peers.push_instance(deps.db, deps.agents, ctx, uuid)  # l2: ports may have left
    log.warning("unshelve of %s failed: %s", uuid, error)


# ---------------------------------------------------------------- the sweeper's hooks


def redrive(deps: WorkflowDeps, ctx: RequestContext, uuid: str, task: str) -> None:
    if task == states.SHELVING:
        shelve_instance(deps, ctx, {"uuid": uuid})
    elif task == states.SHELVING_OFFLOADING:
        offload(deps, ctx, {"uuid": uuid})
    elif task == states.UNSHELVING:
        unshelve_instance(deps, ctx, {"uuid": uuid})


def timed_out(deps: WorkflowDeps, ctx: RequestContext, uuid: str, task: str) -> None:
    error = f"{task} timed out"
    if task == states.UNSHELVING:
        unshelve_failed(deps, ctx, uuid, None, error)
        return
    if task == states.SHELVING:
        snapshot_discard = snapshots.unfinished_images_of(deps.db, uuid)
        store = FileStore(deps.settings.effective_image_dir)
        for image_id in snapshot_discard:
            snapshots.discard_image(deps.db, store, image_id)
    event = SHELVE_EVENT if task == states.SHELVING else OFFLOAD_EVENT
    deps.db.run(lambda s: _fail(s, ctx, uuid, task, event, None, error))
