"""The schemas Glance serves and the import and store information."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest
from cirrus.api.image import schemas
from cirrus.api.image.common import (
    STORE_ID,
)
from cirrus.identity.policy import READ, authorize
from cirrus.storage import image_data


def image_schema(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_schema")
    return schemas.image_schema()


def images_schema(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_schema")
    return schemas.images_schema()


def member_schema(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_schema")
    return schemas.member_schema()


def members_schema(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_schema")
    return schemas.members_schema()


def import_info(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_import_info")
    # glance-direct only: web-download is not offered (imports.py says why).
    return {"import-methods": {"description": "Import methods available.", "type": "array",
                               "value": list(image_data.IMPORT_METHODS)}}


def stores_info(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_stores")
    return {"stores": [{"id": STORE_ID, "description": "Local file store", "default": "true"}]}


ROUTES: list = [
    ("GET", "/v2/schemas/image", image_schema),
    ("GET", "/v2/schemas/images", images_schema),
    ("GET", "/v2/schemas/member", member_schema),
    ("GET", "/v2/schemas/members", members_schema),
    ("GET", "/v2/info/import", import_info),
    ("GET", "/v2/info/stores", stores_info),
]
