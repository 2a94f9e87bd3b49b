"""Cinder's wire form of volumes, snapshots, types and QoS specs. Fields a later
microversion adds are declared in the *_SINCE tables (fields_since)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest
from cirrus.api.volume.attachments import volume_attachments
from cirrus.api.volume.common import project_root, timestamp
from cirrus.api.volume.microversion import fields_since

if TYPE_CHECKING:
    from cirrus.db.models import QosSpec, Volume, VolumeSnapshot, VolumeType

# Extra specs a non-admin may see (Cinder's user-visible ones); the rest say where and how
# the volumes are stored.
USER_VISIBLE_SPECS = ("multiattach", "RESKEY:availability_zones", "replication_enabled")

VOLUME_FIELDS_SINCE: dict[str, dict[str, Any]] = {
    "3.13": {"group_id": lambda v: None},
    "3.48": {"shared_targets": lambda v: False, "service_uuid": lambda v: None},
}
VOLUME_ADMIN_FIELDS_SINCE: dict[str, dict[str, Any]] = {
    "3.21": {"provider_id": lambda v: None},
}
SNAPSHOT_FIELDS_SINCE: dict[str, dict[str, Any]] = {
    "3.14": {"group_snapshot_id": lambda s: None},
    "3.41": {"user_id": lambda s: s.user_id},
}


def links(req: ApiRequest, collection: str, item_id: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{project_root(req)}/{collection}/{item_id}"},
            {"rel": "bookmark",
             "href": f"{project_root(req).replace('/v3/', '/')}/{collection}/{item_id}"}]


# What a create or update answers leaves out (Cinder's create view): the owner, host,
# migration and image attributes are in show and detail only.
_NOT_IN_CREATE = ("os-vol-tenant-attr:tenant_id", "os-vol-host-attr:host",
                  "os-vol-mig-status-attr:migstat", "os-vol-mig-status-attr:name_id",
                  "volume_image_metadata")
_SNAPSHOT_DETAIL = ("os-extended-snapshot-attributes:project_id",
                    "os-extended-snapshot-attributes:progress")


def created_volume_view(req: ApiRequest, v: Volume, type_names: dict[str, str]) -> dict[str, Any]:
    view = volume_view(req, v, type_names)
    for key in _NOT_IN_CREATE:
        view.pop(key, None)
    return view


def snapshot_summary(req: ApiRequest, snap: VolumeSnapshot) -> dict[str, Any]:
    """A snapshot as lists without detail, create and update answer it."""
    view = snapshot_view(req, snap)
    for key in _SNAPSHOT_DETAIL:
        view.pop(key, None)
    return view


def _metadata(v: Volume) -> dict[str, str]:
    """The user's metadata, and `readonly` once the flag was set (Cinder shows its admin
    metadata there)."""
    metadata = dict(v.metadata_items or {})
    if v.readonly is not None:
        metadata.setdefault("readonly", str(v.readonly))
    return metadata


def volume_summary(req: ApiRequest, v: Volume) -> dict[str, Any]:
    return {"id": v.id, "name": v.name, "links": links(req, "volumes", v.id)}


def volume_view(req: ApiRequest, v: Volume, type_names: dict[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": v.id,
        "name": v.name,
        "description": v.description,
        "size": v.size,
        "status": v.status,
        "availability_zone": v.availability_zone,
        "created_at": timestamp(v.created_at),
        "updated_at": timestamp(v.updated_at),
        "attachments": volume_attachments(v),  # issue 15
        "bootable": "true" if v.bootable else "false",
        "encrypted": False,
        "multiattach": v.multiattach,
        "metadata": _metadata(v),
        "links": links(req, "volumes", v.id),
        "user_id": v.user_id,
        "os-vol-tenant-attr:tenant_id": v.project_id,
        "snapshot_id": v.snapshot_id,
        "source_volid": v.source_volid,
        "volume_type": type_names.get(v.volume_type_id, v.volume_type_id),
        "replication_status": None,
        "consistencygroup_id": None,
        "migration_status": None,
    }
    if v.image_metadata:
        view["volume_image_metadata"] = dict(v.image_metadata)
    if req.ctx.is_admin:
        view["os-vol-host-attr:host"] = f"cirrus@{v.backend}#{v.backend}" if v.backend else None
        view["os-vol-mig-status-attr:migstat"] = None
        view["os-vol-mig-status-attr:name_id"] = None
        view.update(fields_since(req, VOLUME_ADMIN_FIELDS_SINCE, v))
    view.update(fields_since(req, VOLUME_FIELDS_SINCE, v))
    return view


def snapshot_view(req: ApiRequest, snap: VolumeSnapshot) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": snap.id,
        "name": snap.name,
        "description": snap.description,
        "volume_id": snap.volume_id,
        "size": snap.size,
        "status": snap.status,
        "created_at": timestamp(snap.created_at),
        "updated_at": timestamp(snap.updated_at),
        "metadata": dict(snap.metadata_items or {}),
        "os-extended-snapshot-attributes:project_id": snap.project_id,
        "os-extended-snapshot-attributes:progress": snap.progress,
    }
    view.update(fields_since(req, SNAPSHOT_FIELDS_SINCE, snap))
    return view


def type_view(req: ApiRequest, t: VolumeType) -> dict[str, Any]:
    specs = dict(t.extra_specs or {})
    if not req.ctx.is_admin:
        specs = {k: v for k, v in specs.items() if k in USER_VISIBLE_SPECS}
    view: dict[str, Any] = {
        "id": t.id, "name": t.name, "description": t.description,
        "is_public": t.is_public, "os-volume-type-access:is_public": t.is_public,
        "extra_specs": specs,
    }
    if req.ctx.is_admin:
        view["qos_specs_id"] = t.qos_specs_id
    return view


def qos_view(req: ApiRequest, q: QosSpec) -> dict[str, Any]:
    return {"id": q.id, "name": q.name, "consumer": q.consumer, "specs": dict(q.specs or {})}


def qos_links(req: ApiRequest, q: QosSpec) -> list[dict[str, str]]:
    """Beside `qos_specs` in a show or create answer, as Cinder puts them."""
    return [{"rel": "self", "href": f"{project_root(req)}/qos-specs/{q.id}"},
            {"rel": "bookmark",
             "href": f"{project_root(req).replace('/v3/', '/')}/qos-specs/{q.id}"}]
