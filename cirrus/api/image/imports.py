"""Interoperable image import: `POST /v2/images/{id}/import` with the `glance-direct` method
(the data was staged by `PUT /v2/images/{id}/stage`, data.py). `web-download` and the copy
methods are not offered: a cloud fetching URLs its users name needs an allow-list and SSRF
protection that Cirrus does not have yet, so /v2/info/import does not announce them."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.image import schemas
from cirrus.api.image.common import STORE_ID
from cirrus.api.validation import validate
from cirrus.errors import BadRequest
from cirrus.identity.policy import WRITE, authorize
from cirrus.storage import image_data


def import_image(req: ApiRequest, image_id: str) -> Reply:
    authorize(req.ctx, WRITE, "import_image")
    body = req.json
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object naming the import method.")
    validate(schemas.IMPORT_BODY, body)
    method = body["method"]["name"]
    if method not in image_data.IMPORT_METHODS:
        raise BadRequest(f"Invalid input for field/attribute method/name: import method "
                         f"'{method}' is not available; available methods: "
                         f"{', '.join(image_data.IMPORT_METHODS)}.")
    unknown = [store for store in body.get("stores", []) if store != STORE_ID]
    if unknown:
        raise BadRequest(f"Invalid input for field/attribute stores: unknown store(s) "
                       f"{', '.join(unknown)}; the only store is '{STORE_ID}'.")
    image_data.import_staged(req.cloud.db, req.ctx, image_id, method)
    return Reply(202, None)


ROUTES: list = [
    ("POST", "/v2/images/{image_id}/import", import_image),
]
