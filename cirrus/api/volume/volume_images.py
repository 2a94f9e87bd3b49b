"""os-volume_upload_image (a volume's data as a new image) and revert (3.40: a volume back
to its latest snapshot); the services are in `cirrus.storage.volumes.volume_images`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.api.volume import schemas
from cirrus.api.volume.common import allow, body_bool, timestamp
from cirrus.api.volume.microversion import Since, min_version
from cirrus.api.volume.views import type_view
from cirrus.db.models import VolumeType
from cirrus.identity.policy import WRITE
from cirrus.storage.volumes import volume_images as service
from cirrus.storage.volumes.rpcapi import VolumeAPI

UPLOAD_VISIBILITY = Since("3.1")  # visibility and protected


def _upload_image(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume_extension:volume_actions:upload_image")
    validate(schemas.UPLOAD_IMAGE_31 if UPLOAD_VISIBILITY(req) else schemas.UPLOAD_IMAGE, body)
    args = body["os-volume_upload_image"]
    upload = service.UploadRequest(
        image_name=args["image_name"],
        force=body_bool("os-volume_upload_image/force", args.get("force", False)),
        disk_format=args.get("disk_format", "raw"),
        container_format=args.get("container_format", "bare"),
        visibility=args.get("visibility", "private"),
        protected=body_bool("os-volume_upload_image/protected", args.get("protected", False)))

    def work(s: Session) -> dict[str, Any]:
        done = service.request_upload(s, req.ctx, volume_id, upload)
        v, image = done.volume, done.image
        vtype = s.get(VolumeType, v.volume_type_id)
        return {"id": v.id, "updated_at": timestamp(v.updated_at), "status": v.status,
                "display_description": v.description, "size": v.size,
                "volume_type": type_view(req, vtype) if vtype else None,
                "image_id": image.id, "container_format": image.container_format,
                "disk_format": image.disk_format, "image_name": image.name,
                "protected": image.protected, "visibility": image.visibility}

    view = req.cloud.db.run(work)
    VolumeAPI(req.cloud.bus).upload_image(req.ctx, volume_id, view["image_id"],
                                          upload.disk_format)
    return Reply(202, {"os-volume_upload_image": view})


@min_version("3.40")
def _revert(req: ApiRequest, volume_id: str, body: dict) -> Reply:
    allow(req, WRITE, "volume:revert_to_snapshot")
    validate(schemas.REVERT, body)
    snapshot_id = body["revert"]["snapshot_id"]
    req.cloud.db.run(lambda s: service.request_revert(s, req.ctx, volume_id, snapshot_id))
    VolumeAPI(req.cloud.bus).revert_volume(req.ctx, volume_id, snapshot_id)
    return Reply(202)


def actions() -> dict[str, Callable[..., Any]]:
    return {"os-volume_upload_image": _upload_image, "revert": _revert}
