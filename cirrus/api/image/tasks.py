"""Glance tasks (/v2/tasks): the `import` task type, admin-only as in Glance's default policy
(tasks_api_access). Cirrus fetches no URL a caller names unless the operator allowed its
prefix, and not yet even then (storage/image_tasks.py): such a task ends in `failure`."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.image import metadef_schemas
from cirrus.api.image.metadefs import _limit, isotime, json_body
from cirrus.errors import BadRequest
from cirrus.identity.policy import ADMIN, READ, authorize
from cirrus.storage import image_tasks, images

STATUSES = ("pending", "processing", "success", "failure")
_SCHEMAS = metadef_schemas.served()


def task_view(task: Any, *, full: bool = True) -> dict:
    body: dict[str, Any] = {
        "id": task.id, "type": task.type, "status": task.status, "owner": task.owner,
        "expires_at": isotime(task.expires_at), "created_at": isotime(task.created_at),
        "updated_at": isotime(task.updated_at or task.created_at),
        "self": f"/v2/tasks/{task.id}", "schema": "/v2/schemas/task",
    }
    if full:
        body.update(input=task.input, result=task.result, message=task.message)
    return body


def create_task(req: ApiRequest) -> Reply:
    authorize(req.ctx, ADMIN, "add_task")
    body = json_body(req, metadef_schemas.CREATE_TASK)
    task = image_tasks.create_task(req.cloud.db, req.ctx, body,
                                   list(req.cloud.settings.image_import_allowed_url_prefixes))
    return Reply(201, task_view(task), {"Location": f"{req.base_url}/image/v2/tasks/{task.id}"})


def list_tasks(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "get_tasks")
    q = req.query
    status, type_ = q.get("status"), q.get("type")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"Invalid input for field/attribute status. Value: {status}. "
                         f"It must be one of: {', '.join(STATUSES)}.")
    if type_ is not None and type_ not in image_tasks.TASK_TYPES:
        raise BadRequest(f"Invalid input for field/attribute type. Value: {type_}. "
                         f"It must be one of: {', '.join(image_tasks.TASK_TYPES)}.")
    sort_dir = q.get("sort_dir", "desc")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid input for field/attribute sort_dir. Value: {sort_dir}. "
                         "It must be asc or desc.")
    if q.get("sort_key", "created_at") != "created_at":
        raise BadRequest("Invalid input for field/attribute sort_key: only created_at is "
                         "supported.")
    tasks = image_tasks.list_tasks(req.cloud.db, req.ctx, status=status, type_=type_,
                                   limit=_limit(q.get("limit")), marker=q.get("marker"),
                                   sort_dir=sort_dir)
    return {"tasks": [task_view(t, full=False) for t in tasks], "first": "/v2/tasks",
            "schema": "/v2/schemas/tasks"}


def show_task(req: ApiRequest, task_id: str) -> dict:
    authorize(req.ctx, ADMIN, "get_task")
    return task_view(image_tasks.get_task(req.cloud.db, req.ctx, task_id))


def task_schema(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "get_task_schema")
    return _SCHEMAS["task"]


def tasks_schema(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "get_task_schema")
    return _SCHEMAS["tasks"]


def image_tasks_of(req: ApiRequest, image_id: str) -> dict:
    """GET /v2/images/{image_id}/tasks: the tasks behind an image the caller can see."""
    authorize(req.ctx, READ, "get_image")
    images.get_image(req.cloud.db, req.ctx, image_id)  # 404 unless visible to the caller
    tasks = image_tasks.tasks_of_image(req.cloud.db, req.ctx, image_id)
    return {"tasks": [{**task_view(t), "image_id": image_id} for t in tasks]}


ROUTES: list = [
    ("GET", "/v2/images/{image_id}/tasks", image_tasks_of),
    ("GET", "/v2/tasks", list_tasks),
    ("POST", "/v2/tasks", create_task),
    ("GET", "/v2/tasks/{task_id}", show_task),
    ("GET", "/v2/schemas/task", task_schema),
    ("GET", "/v2/schemas/tasks", tasks_schema),
]
