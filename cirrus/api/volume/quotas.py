"""os-quota-sets (show, defaults, usage, update, delete), /limits and
os-availability-zone over cirrus.storage.volumes.quotas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.api.volume import schemas
from cirrus.api.volume.common import READ, admin_only, allow, parse_bool
from cirrus.errors import BadRequest, Forbidden
from cirrus.storage.volumes import quotas as service

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _may_see(req: ApiRequest, project_id: str) -> None:
    allow(req, READ, "volume_extension:quotas:show")
    if not req.ctx.is_admin and project_id != req.ctx.project_id:
        raise Forbidden("Policy doesn't allow volume_extension:quotas:show to be performed.")


def show_quotas(req: ApiRequest, quota_project_id: str) -> dict:
    _may_see(req, quota_project_id)
    usage = parse_bool("usage", req.query.get("usage", "false"))
    with req.cloud.db.reader() as s:
        limits = service.get_limits(s, req.cloud.settings, quota_project_id)
        if not usage:
            return {"quota_set": {"id": quota_project_id, **limits}}
        used = service.usage(s, quota_project_id)
    return {"quota_set": {"id": quota_project_id, **{
        name: {"limit": limit, "in_use": used.get(name, 0), "reserved": 0, "allocated": 0}
        for name, limit in limits.items()}}}


def show_defaults(req: ApiRequest, quota_project_id: str) -> dict:
    allow(req, READ, "volume_extension:quotas:show")
    with req.cloud.db.reader() as s:
        return {"quota_set": {"id": quota_project_id,
                              **service.default_limits(s, req.cloud.settings)}}


def update_quotas(req: ApiRequest, quota_project_id: str) -> dict:
    admin_only(req, "volume_extension:quotas:update")
    body = req.json
    if isinstance(body, dict) and isinstance(body.get("quota_set"), dict):
        for ignored in ("tenant_id", "id"):
            body["quota_set"].pop(ignored, None)
    validate(schemas.QUOTA_UPDATE, body)
    values = {k: int(v) for k, v in body["quota_set"].items()}
    for name, value in values.items():
        if value < -1:
            raise BadRequest(f"Invalid input for field/attribute quota_set/{name}. Value: "
                             f"{value}. Quota limit must be -1 or greater.")

    def work(s: Session) -> Any:
        service.set_limits(s, quota_project_id, values)
        s.flush()
        return service.get_limits(s, req.cloud.settings, quota_project_id)

    return {"quota_set": req.cloud.db.run(work)}


def delete_quotas(req: ApiRequest, quota_project_id: str) -> Reply:
    admin_only(req, "volume_extension:quotas:delete")
    req.cloud.db.run(lambda s: service.delete_limits(s, quota_project_id))
    return Reply(200)


def show_class(req: ApiRequest, class_name: str) -> dict:
    admin_only(req, "volume_extension:quota_classes")
    with req.cloud.db.reader() as s:
        return {"quota_class_set": {"id": class_name,
                                    **service.class_limits(s, req.cloud.settings, class_name)}}


def update_class(req: ApiRequest, class_name: str) -> dict:
    admin_only(req, "volume_extension:quota_classes")
    body = req.json
    if isinstance(body, dict) and isinstance(body.get("quota_class_set"), dict):
        body["quota_class_set"].pop("id", None)
    validate(schemas.QUOTA_CLASS_UPDATE, body)
    values = {k: int(v) for k, v in body["quota_class_set"].items()}
    for name, value in values.items():
        if value < -1:
            raise BadRequest(f"Invalid input for field/attribute quota_class_set/{name}. "
                             f"Value: {value}. Quota limit must be -1 or greater.")

    def work(s: Session) -> Any:
        service.set_class_limits(s, class_name, values)
        return service.class_limits(s, req.cloud.settings, class_name)

    return {"quota_class_set": req.cloud.db.run(work)}


_ABSOLUTE = {"volumes": ("maxTotalVolumes", "totalVolumesUsed"),
             "gigabytes": ("maxTotalVolumeGigabytes", "totalGigabytesUsed"),
             "snapshots": ("maxTotalSnapshots", "totalSnapshotsUsed"),
             "backups": ("maxTotalBackups", "totalBackupsUsed"),
             "backup_gigabytes": ("maxTotalBackupGigabytes", "totalBackupGigabytesUsed")}


def show_limits(req: ApiRequest) -> dict:
    allow(req, READ, "limits_extension:used_limits")
    project_id = req.ctx.project_id or ""
    with req.cloud.db.reader() as s:
        limits = service.get_limits(s, req.cloud.settings, project_id)
        used = service.usage(s, project_id)
    absolute: dict[str, int] = {}
    for name, (max_key, used_key) in _ABSOLUTE.items():
        absolute[max_key] = limits[name]
        absolute[used_key] = used.get(name, 0)
    return {"limits": {"rate": [], "absolute": absolute}}


def list_zones(req: ApiRequest) -> dict:
    allow(req, READ, "volume_extension:availability_zone_list")
    return {"availabilityZoneInfo": [{"zoneName": req.cloud.settings.default_availability_zone,
                                      "zoneState": {"available": True}}]}


ROUTES = [
    ("GET", "/v3/{project_id}/os-quota-sets/{quota_project_id}", show_quotas),
    ("PUT", "/v3/{project_id}/os-quota-sets/{quota_project_id}", update_quotas),
    ("DELETE", "/v3/{project_id}/os-quota-sets/{quota_project_id}", delete_quotas),
    ("GET", "/v3/{project_id}/os-quota-sets/{quota_project_id}/defaults", show_defaults),
    ("GET", "/v3/{project_id}/os-quota-class-sets/{class_name}", show_class),
    ("PUT", "/v3/{project_id}/os-quota-class-sets/{class_name}", update_class),
    ("GET", "/v3/{project_id}/limits", show_limits),
    ("GET", "/v3/{project_id}/os-availability-zone", list_zones),
]
