"""A server's block device mappings at build (issue 15; cirrus.compute.block_devices): the
volumes to make (from an image, a snapshot, or blank) are made through the volume role and
waited for (`boot_volume_timeout`), then every volume is reserved and attached, as the
attach workflow does, before the spawn, so the spec's `volumes` hold them (boot_index 0:
the root). What is done is recorded in the request_spec entry ("volume_id", "created",
"attachment_id"), so a rescheduled build or a redelivered message does not do it twice.

A failure ends the build in ERROR with a fault naming the volume (the caller's
fail_build), and `clean_up` detaches what was attached and deletes the volumes marked
delete_on_termination, as Nova does on a failed build.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import block_devices
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Instance, Volume
from cirrus.errors import CirrusError, is_transient
from cirrus.storage.volumes import attachments, states
from cirrus.storage.volumes import volumes as volume_records
from cirrus.storage.volumes.attachments import SERVER_KEY
from cirrus.storage.volumes.rpcapi import VolumeAPI

POLL = 0.05


class BlockDeviceError(Exception):
    """The volumes of a build could not be made or attached: the fault's message."""


def _entries(s: Session, uuid: str) -> tuple[Instance | None, list[dict[str, Any]]]:
    inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
    if inst is None or inst.deleted:
        return None, []
    return inst, [dict(b) for b in (inst.request_spec or {}).get(block_devices.BLOCK_DEVICES)
                  or []]


def _save(s: Session, uuid: str, index: int, **values: Any) -> bool:
    """Record what was done for entry `index`; False if the instance is gone."""
    inst = s.scalar(select(Instance).where(Instance.uuid == uuid).with_for_update())
    if inst is None or inst.deleted:
        return False
    spec = dict(inst.request_spec or {})
    entries = [dict(b) for b in spec.get(block_devices.BLOCK_DEVICES) or []]
    entries[index].update(values)
    spec[block_devices.BLOCK_DEVICES] = entries
    inst.request_spec = spec
    return True


def has_block_devices(s: Session, uuid: str) -> bool:
    return bool(_entries(s, uuid)[1])


def prepare(deps: WorkflowDeps, ctx: RequestContext, uuid: str) -> bool:
    """Make and attach the build's volumes. False: the instance is gone meanwhile.
    BlockDeviceError: why not (the volume named)."""
    with deps.db.reader() as s:
        inst, entries = _entries(s, uuid)
    if inst is None:
        return False
    for index, bdm in enumerate(entries):
        if bdm.get("attachment_id"):
            continue
        volume_id = bdm.get("volume_id")
        if volume_id is None:
            if bdm["source_type"] == "volume":
                volume_id = str(bdm["uuid"])
                if not deps.db.run(_saver(uuid, index, volume_id)):
                    return False
            else:
                volume_id = _create(deps, ctx, uuid, index, bdm)
                if volume_id is None:
                    return False
            _wait_available(deps, volume_id)
        if not _attach(deps, ctx, uuid, index, bdm, volume_id):
            return False
    return True


def _saver(uuid: str, index: int, volume_id: str) -> Callable[[Session], bool]:
    return lambda s: _save(s, uuid, index, volume_id=volume_id)


def _create(deps: WorkflowDeps, ctx: RequestContext, uuid: str, index: int,
            bdm: dict[str, Any]) -> str | None:
    source = bdm["source_type"]
    spec = volume_records.VolumeSpec(
        size=bdm.get("volume_size"), name="", description="",
        volume_type=bdm.get("volume_type"),
        image_id=bdm["uuid"] if source == "image" else None,
        snapshot_id=bdm["uuid"] if source == "snapshot" else None)

    def make(s: Session) -> str | None:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid).with_for_update())
        if inst is None or inst.deleted:
            return None
        volume = volume_records.create_volume(s, ctx, deps.settings, spec)
        _save(s, uuid, index, volume_id=volume.id, created=True)
        return volume.id

    try:
        volume_id = deps.db.run(make)
    except CirrusError as exc:
        if is_transient(exc):
            raise
        raise BlockDeviceError(f"Volume for block device mapping {index} ({source} "
                               f"{bdm.get('uuid') or ''}) could not be created: "
                               f"{exc.message}") from exc
    if volume_id is None:
        return None
    VolumeAPI(deps.bus).create_volume(ctx, volume_id)
    log.info("instance %s: volume %s being created from %s %s", uuid, volume_id, source,
             bdm.get("uuid") or "")
    return volume_id


def _wait_available(deps: WorkflowDeps, volume_id: str) -> None:
    """Nova's _await_block_device_map_created: the volume available, else why not."""
    timeout = max(0.0, deps.settings.boot_volume_timeout)
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        with deps.db.reader() as s:
            status = s.scalar(select(Volume.status).where(Volume.id == volume_id))
        if status == states.AVAILABLE:
            return
        waited = time.monotonic() - started
        if status in (None, states.ERROR, states.DELETING) or waited >= timeout:
            raise BlockDeviceError(
                f"Volume {volume_id} did not finish being created even after we waited "
                f"{int(waited)} seconds or {attempts} attempts. And its status is {status}.")
        time.sleep(POLL)


def _attach(deps: WorkflowDeps, ctx: RequestContext, uuid: str, index: int,
            bdm: dict[str, Any], volume_id: str) -> bool:
    """Reserve, connect and complete, as the attach workflow does, before the spawn."""
    device = bdm.get("device_name") or ("/dev/vda" if bdm.get("boot_index") == 0 else None)

    def reserve(s: Session) -> str | None:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted:
            return None
        att = attachments.reserve(
            s, ctx, volume_id, uuid, project_id=inst.project_id, device=device,
            tag=bdm.get("tag"), delete_on_termination=bool(bdm.get("delete_on_termination")))
        fields = attachments.server_fields(att)
        att.connector = {SERVER_KEY: {**fields, "boot_index": bdm.get("boot_index")}}
        _save(s, uuid, index, attachment_id=att.id)
        return att.id

    try:
        attachment_id = deps.db.run(reserve)
    except CirrusError as exc:
        if is_transient(exc):
            raise
        raise BlockDeviceError(f"Volume {volume_id} could not be attached: "
                               f"{exc.message}") from exc
    if attachment_id is None:
        return False
    try:
        connection = VolumeAPI(deps.bus).initialize_connection(
            ctx, volume_id, timeout=deps.settings.rpc_timeout)
    except (BusTimeout, RemoteError) as exc:
        raise BlockDeviceError(f"Volume {volume_id} could not be connected: {exc}") from exc

    def complete(s: Session) -> bool:
        return attachments.attaching(s, attachment_id, connection) and \
            attachments.complete(s, attachment_id, device)

    if not deps.db.run(complete):
        raise BlockDeviceError(f"Volume {volume_id} is no longer reserved for {uuid}.")
    log.info("instance %s: volume %s attached for the build%s", uuid, volume_id,
             " (root)" if bdm.get("boot_index") == 0 else "")
    return True


def clean_up(deps: WorkflowDeps, ctx: RequestContext, uuid: str) -> None:
    """A failed build: its volumes detached, and those marked delete_on_termination
    deleted (made for it or not, as Nova). Safe to call more than once."""
    def release(s: Session) -> list[str]:
        doomed = []
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        entries = (inst.request_spec or {}).get(block_devices.BLOCK_DEVICES) or [] \
            if inst is not None else []
        for att in attachments.of_instance(s, uuid):
            attachments.finish_detach(s, att.id)
        for bdm in entries:
            volume_id = bdm.get("volume_id")
            if not volume_id or not bdm.get("delete_on_termination"):
                continue
            if volume_records.transition(s, volume_id, (states.AVAILABLE, states.ERROR),
                                         states.DELETING):
                doomed.append(volume_id)
        return doomed

    api = VolumeAPI(deps.bus)
    for volume_id in deps.db.run(release):
        api.delete_volume(ctx, volume_id)
        log.info("instance %s: build failed, volume %s deleted", uuid, volume_id)
