"""Block device mapping v2 on server create (issue 15): boot from volume.

The API's `block_device_mapping_v2` (and the legacy `block_device_mapping`) entries, checked
as Nova checks them, become plain dicts kept in the instance's request_spec under
BLOCK_DEVICES; the conductor (cirrus.compute.workflows.boot_volumes) makes the volumes to be
made, then reserves and attaches every volume before the spawn. Knows nothing of HTTP.

An entry, once parsed: {"source_type", "destination_type", "uuid", "boot_index",
"volume_size", "volume_type", "device_name", "tag", "delete_on_termination"}; the
conductor adds "volume_id" (the volume it stands for) and "created" (made for the server).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import Image, Volume, VolumeSnapshot
from cirrus.errors import BadRequest
from cirrus.storage import images
from cirrus.storage.volumes import quotas as volume_quotas
from cirrus.storage.volumes import states as volume_states
from cirrus.storage.volumes import types as volume_types

BLOCK_DEVICES = "block_devices"  # request_spec key
INVALID = "Block Device Mapping is Invalid: "
_TRUE = ("1", "t", "true", "on", "y", "yes")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _boot_index(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Invalid input for field/attribute boot_index. Value: {value}.") \
            from exc


def _device(name: Any) -> str | None:
    if name is None or name == "":
        return None
    text = str(name)
    if len(text) > 255 or " " in text:
        raise BadRequest(f"{INVALID}Device name contains spaces." if " " in text
                         else f"{INVALID}Device name is too long.")
    return text


def parse(server: dict[str, Any], *, volume_type_ok: bool, tag_ok: bool) -> list[dict[str, Any]]:
    """The server's mappings (v2, or legacy converted), checked for form; [] if none."""
    legacy = server.get("block_device_mapping")
    v2 = server.get("block_device_mapping_v2")
    if legacy and v2:
        raise BadRequest("Using different block_device_mapping syntaxes is not allowed in "
                         "the same request.")
    if legacy:
        return [_from_legacy(item) for item in legacy]
    return [_v2(item, volume_type_ok=volume_type_ok, tag_ok=tag_ok) for item in v2 or []]


def _from_legacy(item: Any) -> dict[str, Any]:
    """A legacy mapping: {volume_id | snapshot_id, device_name, delete_on_termination,
    volume_size}; vda (or the first) is the root, as Nova reads it."""
    if not isinstance(item, dict):
        raise BadRequest("Invalid input for field/attribute block_device_mapping.")
    if item.get("no_device"):
        raise BadRequest(f"{INVALID}no_device mappings are not supported.")
    device = _device(item.get("device_name"))
    if not device:
        raise BadRequest("Invalid input for field/attribute device_name. Value: None. "
                         "None is not of type 'string'")
    if item.get("snapshot_id"):
        source, uuid = "snapshot", str(item["snapshot_id"])
    elif item.get("volume_id"):
        source, uuid = "volume", str(item["volume_id"])
    else:
        raise BadRequest(f"{INVALID}Missing device UUID.")
    root = device.rsplit("/", 1)[-1] in ("vda", "sda", "xvda", "hda")
    size = item.get("volume_size")
    return {"source_type": source, "destination_type": "volume", "uuid": uuid,
            "boot_index": 0 if root else None,
            "volume_size": int(size) if size not in (None, "") else None,
            "volume_type": None, "device_name": device, "tag": None,
            "delete_on_termination": _bool(item.get("delete_on_termination", False))}


def _v2(item: dict[str, Any], *, volume_type_ok: bool, tag_ok: bool) -> dict[str, Any]:
    if "volume_type" in item and not volume_type_ok:
        raise BadRequest("Invalid input for field/attribute block_device_mapping_v2. "
                         "Additional properties are not allowed ('volume_type' was unexpected)")
    if "tag" in item and not tag_ok:
        raise BadRequest("Invalid input for field/attribute block_device_mapping_v2. "
                         "Additional properties are not allowed ('tag' was unexpected)")
    source = item.get("source_type")
    if source is None:
        raise BadRequest(f"{INVALID}Missing source_type field.")
    boot_index = _boot_index(item.get("boot_index"))
    destination = item.get("destination_type") or ("local" if source in ("image", "blank")
                                                   else "volume")
    uuid = item.get("uuid")
    if source in ("image", "volume", "snapshot") and not uuid:
        raise BadRequest(f"{INVALID}Missing device UUID.")
    if source == "blank" and uuid:
        raise BadRequest(f"{INVALID}Blank device may not have a uuid.")
    if source in ("volume", "snapshot") and destination != "volume":
        raise BadRequest(f"{INVALID}source_type {source} needs destination_type volume.")
    size = item.get("volume_size")
    size = int(size) if size not in (None, "") else None
    if item.get("volume_type") and destination != "volume":
        raise BadRequest("Specifying a volume_type with destination_type=local is not "
                         "supported.")
    if destination == "volume" and source in ("image", "blank") and not size:
        what = "Images" if source == "image" else "Blank volumes"
        raise BadRequest(f"{INVALID}{what} with destination_type 'volume' need to have a "
                         "non-zero size specified")
    if destination == "local" and source == "blank":
        # Ephemeral and swap disks from a mapping: not offered (the flavor's are).
        raise BadRequest(f"{INVALID}Blank local disks (ephemeral or swap from "
                         "block_device_mapping_v2) are not supported by this cloud; use a "
                         "flavor with ephemeral or swap disks.")
    if destination == "local" and source == "image" and boot_index != 0:
        raise BadRequest(f"{INVALID}Mapping image to local is not supported.")
    return {"source_type": source, "destination_type": destination,
            "uuid": str(uuid) if uuid else None, "boot_index": boot_index,
            "volume_size": size, "volume_type": item.get("volume_type"),
            "device_name": _device(item.get("device_name")), "tag": item.get("tag"),
            "delete_on_termination": _bool(item.get("delete_on_termination", False))}


def root_image(image_ref: str | None, bdms: list[dict[str, Any]]) -> tuple[str | None,
                                                                           list[dict[str, Any]]]:
    """(the image of a local root disk or None, the mappings that become volumes).

    Nova's rule: exactly one root (boot_index 0) among the mappings when no imageRef is
    given; boot indexes in sequence 0, 1, 2..."""
    indexes = sorted(b["boot_index"] for b in bdms
                     if b["boot_index"] is not None and b["boot_index"] >= 0)
    if indexes != list(range(len(indexes))):
        raise BadRequest(f"{INVALID}Boot sequence for the instance and image/block device "
                         "mapping combination is not valid.")
    root = next((b for b in bdms if b["boot_index"] == 0), None)
    volumes = [b for b in bdms if b["destination_type"] == "volume"]
    if root is None:
        if not image_ref:
            if bdms:
                raise BadRequest(f"{INVALID}Boot sequence for the instance and image/block "
                                 "device mapping combination is not valid.")
            raise BadRequest("Missing imageRef attribute")
        return image_ref, volumes
    if root["destination_type"] == "local":  # an image to a local root disk (the CLI's form)
        if image_ref and root["uuid"] != image_ref:
            raise BadRequest(f"{INVALID}Boot sequence for the instance and image/block "
                             "device mapping combination is not valid.")
        return root["uuid"], volumes
    return None, volumes


def check(s: Session, ctx: RequestContext, settings: Any, volumes: list[dict[str, Any]],
          count: int) -> None:
    """The sources exist, are usable and the caller's; what is made fits Cinder's quotas.
    400 (Nova's InvalidBDM...) or 403 (over quota), before anything is recorded."""
    if count > 1 and any(b["source_type"] == "volume" for b in volumes):
        raise BadRequest(f"{INVALID}Unable to launch multiple instances with a single "
                         "volume: a volume may be attached to one server.")
    seen: set[str] = set()
    new_gb: dict[str, int] = {}
    for bdm in volumes:
        source, uuid = bdm["source_type"], bdm["uuid"]
        if source == "volume":
            if uuid in seen:
                raise BadRequest(f"{INVALID}Volume {uuid} is mapped more than once.")
            seen.add(uuid)
            volume = s.get(Volume, uuid) if len(uuid) <= 36 else None
            if volume is None or volume.deleted or volume.project_id != ctx.project_id:
                raise BadRequest(f"{INVALID}failed to get volume {uuid}.")
            if volume.status != volume_states.AVAILABLE:
                raise BadRequest(f"Invalid volume: volume {uuid} status must be 'available' "
                                 f"to attach, but it is '{volume.status}'.")
            if bdm["boot_index"] == 0 and not volume.bootable:  # Nova: the root must boot
                raise BadRequest(f"{INVALID}Block Device {uuid} is not bootable.")
            continue
        size = bdm["volume_size"]
        if source == "snapshot":
            snap = s.get(VolumeSnapshot, uuid) if len(uuid) <= 36 else None
            if snap is None or snap.deleted or snap.project_id != ctx.project_id:
                raise BadRequest(f"{INVALID}failed to get snapshot {uuid}.")
            if snap.status != volume_states.AVAILABLE:
                raise BadRequest(f"Invalid snapshot: snapshot {uuid} status must be "
                                 f"'available', but it is '{snap.status}'.")
            size = max(size or 0, snap.size)
            bdm["volume_size"] = size
        if source == "image":
            image = s.get(Image, uuid) if len(uuid) <= 36 else None
            if image is None or not images.can_see(s, ctx, image):
                raise BadRequest(f"Image {uuid} could not be found.")
            if image.status != "active":
                raise BadRequest(f"Image {uuid} is not active.")
        vtype_name = bdm["volume_type"]
        if vtype_name:
            try:
                vtype = volume_types.get_type(s, ctx, vtype_name)
            except Exception as exc:  # NotFound: Nova's VolumeTypeNotFound, a 400
                raise BadRequest(f"Volume type {vtype_name} could not be found.") from exc
            bdm["volume_type"] = vtype.name
        key = bdm["volume_type"] or ""
        new_gb[key] = new_gb.get(key, 0) + int(size or 0) * count
    if new_gb:
        _check_quota(s, settings, ctx.project_id or "", new_gb,
                     sum(1 for b in volumes if b["source_type"] != "volume") * count)


def _check_quota(s: Session, settings: Any, project_id: str, gigabytes: dict[str, int],
                 volumes: int) -> None:
    limits = volume_quotas.get_limits(s, settings, project_id)
    used = volume_quotas.usage(s, project_id)
    total_gb = sum(gigabytes.values())
    for resource, want in (("volumes", volumes), ("gigabytes", total_gb)):
        limit = limits.get(resource, volume_quotas.UNLIMITED)
        if limit != volume_quotas.UNLIMITED and used.get(resource, 0) + want > limit:
            raise volume_quotas.VolumeOverQuota(
                f"Volume resource quota exceeded: {resource} (limit {limit}, "
                f"{used.get(resource, 0)} in use, {want} requested).")
