"""GET /v2/images/{id}/tasks (Glance 2.12): the tasks that worked on an image. Cirrus runs
no Glance tasks (an import or a server snapshot completes without one), so a visible image
has none; clients (Tempest's createBackup test among them) wait on this list being done."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest
from cirrus.identity.policy import READ, authorize
from cirrus.storage import images


def list_image_tasks(req: ApiRequest, image_id: str) -> dict:
    authorize(req.ctx, READ, "get_image")
    images.get_image(req.cloud.db, req.ctx, image_id)  # 404 unless the caller sees it
    return {"tasks": []}


ROUTES = [("GET", "/v2/images/{image_id}/tasks", list_image_tasks)]
