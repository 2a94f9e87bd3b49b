"""Project tags (/v3/projects/{id}/tags) and the hierarchy shown with a project
(?subtree_as_list, ?parents_as_list, ?subtree_as_ids, ?parents_as_ids).

Tags are read by anyone with a role on the project; written by an administrator or a
member whose token is scoped to that project (Keystone's defaults).
"""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import catalog_schemas as schemas
from cirrus.api.identity.common import _authorize, _is_true, _v3
from cirrus.api.identity.views import _project_view
from cirrus.api.validation import validate
from cirrus.errors import Forbidden, NotFound
from cirrus.identity import service as identity
from cirrus.identity.policy import READ, WRITE
from cirrus.identity.service import project_tree


def _readable(req: ApiRequest, s: Any, project_id: str) -> None:
    if req.ctx.is_admin:
        return
    _authorize(req, READ, "get_project_tag")
    if project_id not in {p.id for p in identity.projects_of_user(s, req.require_user())}:
        raise NotFound(f"Could not find project: {project_id}.")


def _writable(req: ApiRequest, project_id: str, action: str) -> None:
    if req.ctx.is_admin:
        return
    with req.cloud.db.reader() as s:
        _readable(req, s, project_id)
    _authorize(req, WRITE, action)
    if req.ctx.project_id != project_id:
        raise Forbidden(f"You are not authorized to perform the requested action: "
                        f"identity:{action}.")


def hierarchy(req: ApiRequest, s: Any, project: Any, visible: set[str] | None) -> dict:
    """What a project's GET adds for the hierarchy flags (non-admins see only the projects
    they hold a role on in the lists, as in Keystone)."""
    extra: dict = {}

    def shown(items: list) -> list:
        return [p for p in items if visible is None or p.id in visible]

    if "parents_as_list" in req.query or "parents_as_ids" in req.query:
        chain = project_tree.parents(s, project)
        if _is_true(req, "parents_as_list"):
            extra["parents"] = [{"project": _project_view(req, p)} for p in shown(chain)]
        elif _is_true(req, "parents_as_ids"):
            extra["parents"] = project_tree.parents_as_ids(chain)
    if "subtree_as_list" in req.query or "subtree_as_ids" in req.query:
        below = project_tree.subtree(s, project)
        if _is_true(req, "subtree_as_list"):
            extra["subtree"] = [{"project": _project_view(req, p)} for p in shown(below)]
        elif _is_true(req, "subtree_as_ids"):
            extra["subtree"] = project_tree.subtree_as_ids(project, below)
    return extra


def list_tags(req: ApiRequest, project_id: str) -> dict:
    with req.cloud.db.reader() as s:
        _readable(req, s, project_id)
        return {"tags": project_tree.tags_of(identity.get_project(s, project_id))}


def replace_tags(req: ApiRequest, project_id: str) -> dict:
    _writable(req, project_id, "update_project_tags")
    body = req.json
    validate(schemas.project_tags, body)
    tags = body["tags"]
    return {"tags": req.cloud.db.run(lambda s: project_tree.set_tags(s, project_id, tags))}


def delete_tags(req: ApiRequest, project_id: str) -> None:
    _writable(req, project_id, "delete_project_tags")
    req.cloud.db.run(lambda s: project_tree.set_tags(s, project_id, []))


def check_tag(req: ApiRequest, project_id: str, tag: str) -> Reply:
    project_tree.check_tag(tag, "tag")
    with req.cloud.db.reader() as s:
        _readable(req, s, project_id)
        if tag not in project_tree.tags_of(identity.get_project(s, project_id)):
            raise NotFound(f"Tag {tag} not found for project {project_id}.")
    return Reply(204)


def add_tag(req: ApiRequest, project_id: str, tag: str) -> Reply:
    project_tree.check_tag(tag, "tag")
    _writable(req, project_id, "create_project_tag")
    req.cloud.db.run(lambda s: project_tree.add_tag(s, project_id, tag))
    return Reply(201, None, {"Location": f"{_v3(req)}/projects/{project_id}/tags/{tag}"})


def delete_tag(req: ApiRequest, project_id: str, tag: str) -> None:
    project_tree.check_tag(tag, "tag")
    _writable(req, project_id, "delete_project_tag")
    req.cloud.db.run(lambda s: project_tree.remove_tag(s, project_id, tag))


ROUTES: list = [
    ("GET", "/v3/projects/{project_id}/tags", list_tags),
    ("PUT", "/v3/projects/{project_id}/tags", replace_tags),
    ("DELETE", "/v3/projects/{project_id}/tags", delete_tags),
    ("GET", "/v3/projects/{project_id}/tags/{tag}", check_tag),
    ("HEAD", "/v3/projects/{project_id}/tags/{tag}", check_tag),
    ("PUT", "/v3/projects/{project_id}/tags/{tag}", add_tag),
    ("DELETE", "/v3/projects/{project_id}/tags/{tag}", delete_tag),
]
