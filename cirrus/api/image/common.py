"""What the image routes share: the versions, limits and media types, the file store."""

from __future__ import annotations

from typing import Any

from cirrus.errors import CirrusError
from cirrus.storage.filestore import FileStore

SERVICE = "image"
CURRENT_VERSION = "2.15"
SUPPORTED_VERSIONS = ("2.9", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")
PATCH_MEDIA_TYPES = {
    "application/openstack-images-v2.1-json-patch": "2.1",
    "application/openstack-images-v2.0-json-patch": "2.0",
}
PATCH_OPS = ("add", "remove", "replace")
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
UPLOAD_FLUSH_BYTES = 1024 * 1024  # bytes gathered from the socket per write to disk
STORE_ID = "file"


class UnsupportedMediaType(CirrusError):
    status = 415
    default_message = "Unsupported Content-Type"


def _store(req_or_cloud: Any) -> FileStore:
    cloud = getattr(req_or_cloud, "cloud", req_or_cloud)
    return FileStore(cloud.settings.effective_image_dir)
