"""An image as Glance shows it."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from cirrus.api.image.common import (
    STORE_ID,
)

if TYPE_CHECKING:
    from cirrus.db.models import Image


def _isotime(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def image_view(image: Image) -> dict[str, Any]:
    """An image as Glance shows it: extra properties flattened beside the core fields."""
    view: dict[str, Any] = dict(image.properties or {})
    view.update({
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "owner": image.owner,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        "container_format": image.container_format,
        "disk_format": image.disk_format,
        "created_at": _isotime(image.created_at),
        "updated_at": _isotime(image.updated_at or image.created_at),
        "tags": list(image.tags or []),
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    })
    if image.location and image.status in ("active", "deactivated"):
        view["stores"] = STORE_ID
    return view
