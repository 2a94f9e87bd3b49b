"""OS-EP-FILTER: endpoint groups and project associations (whole groups, or single
endpoints). A token scoped to a project with associations carries only those endpoints."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import catalog_schemas as schemas
from cirrus.api.identity.catalog import _endpoint_view
from cirrus.api.identity.common import _authorize, _body, _collection, _v3
from cirrus.api.identity.views import _project_view
from cirrus.identity.policy import ADMIN, expand_roles
from cirrus.identity.service import catalog_admin
from cirrus.identity.service import endpoint_groups as ep_filter

_PREFIX = "/v3/OS-EP-FILTER"
_GROUP = _PREFIX + "/endpoint_groups/{endpoint_group_id}"
_PROJECT = _PREFIX + "/projects/{project_id}"


def _read(req: ApiRequest, action: str) -> None:
    """Keystone's default policy: an admin, or a reader whose token is scoped to the system."""
    if req.ctx.system and "reader" in expand_roles(req.ctx.roles):
        return
    _authorize(req, ADMIN, action)


def _group_view(req: ApiRequest, group: Any) -> dict:
    return {"id": group.id, "name": group.name, "description": group.description,
            "filters": dict(group.filters or {}),
            "links": {"self": f"{_v3(req)}/OS-EP-FILTER/endpoint_groups/{group.id}"}}


def _write(req: ApiRequest, work: Any) -> Any:
    """Associations and groups change what tokens carry: this process reads them again."""
    result = req.cloud.db.run(work)
    catalog_admin.catalog_changed(req.cloud.db)
    return result


# ---------------------------------------------------------------- endpoint groups


def list_groups(req: ApiRequest) -> dict:
    _read(req, "list_endpoint_groups")
    with req.cloud.db.reader() as s:
        found = ep_filter.list_groups(s, name=req.query.get("name"))
    return _collection(req, "endpoint_groups", [_group_view(req, g) for g in found])


def create_group(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_endpoint_group")
    fields = _body(req, schemas.endpoint_group_create, "endpoint_group")
    group = _write(req, lambda s: ep_filter.create_group(s, fields))
    return Reply(201, {"endpoint_group": _group_view(req, group)})


def show_group(req: ApiRequest, endpoint_group_id: str) -> dict:
    _read(req, "get_endpoint_group")
    with req.cloud.db.reader() as s:
        return {"endpoint_group": _group_view(req, ep_filter.get_group(s, endpoint_group_id))}


def update_group(req: ApiRequest, endpoint_group_id: str) -> dict:
    _authorize(req, ADMIN, "update_endpoint_group")
    fields = _body(req, schemas.endpoint_group_update, "endpoint_group")
    group = _write(req, lambda s: ep_filter.update_group(s, endpoint_group_id, fields))
    return {"endpoint_group": _group_view(req, group)}


def delete_group(req: ApiRequest, endpoint_group_id: str) -> None:
    _authorize(req, ADMIN, "delete_endpoint_group")
    _write(req, lambda s: ep_filter.delete_group(s, endpoint_group_id))


def list_group_endpoints(req: ApiRequest, endpoint_group_id: str) -> dict:
    _read(req, "list_endpoints_associated_with_endpoint_group")
    with req.cloud.db.reader() as s:
        found = ep_filter.endpoints_of_group(s, endpoint_group_id)
        return _collection(req, "endpoints", [_endpoint_view(req, ep) for ep in found])


def list_group_projects(req: ApiRequest, endpoint_group_id: str) -> dict:
    _read(req, "list_projects_associated_with_endpoint_group")
    with req.cloud.db.reader() as s:
        found = ep_filter.projects_of_group(s, endpoint_group_id)
        return _collection(req, "projects", [_project_view(req, p) for p in found])


# ---------------------------------------------------------------- groups and projects


def add_group_to_project(req: ApiRequest, endpoint_group_id: str, project_id: str) -> None:
    _authorize(req, ADMIN, "add_endpoint_group_to_project")
    _write(req, lambda s: ep_filter.add_group_to_project(s, endpoint_group_id, project_id))


def show_group_in_project(req: ApiRequest, endpoint_group_id: str, project_id: str) -> dict:
    _read(req, "get_endpoint_group_in_project")
    with req.cloud.db.reader() as s:
        ep_filter.get_group_in_project(s, endpoint_group_id, project_id)
    self_url = f"{_v3(req)}/OS-EP-FILTER/endpoint_groups/{endpoint_group_id}/projects/{project_id}"
    return {"project_endpoint_group": {"endpoint_group_id": endpoint_group_id,
                                       "project_id": project_id, "links": {"self": self_url}}}


def remove_group_from_project(req: ApiRequest, endpoint_group_id: str, project_id: str) -> None:
    _authorize(req, ADMIN, "remove_endpoint_group_from_project")
    _write(req, lambda s: ep_filter.remove_group_from_project(s, endpoint_group_id, project_id))


def list_project_groups(req: ApiRequest, project_id: str) -> dict:
    _read(req, "list_endpoint_groups_for_project")
    with req.cloud.db.reader() as s:
        found = ep_filter.groups_of_project(s, project_id)
        return _collection(req, "endpoint_groups", [_group_view(req, g) for g in found])


# ---------------------------------------------------------------- single endpoints


def add_endpoint_to_project(req: ApiRequest, project_id: str, endpoint_id: str) -> None:
    _authorize(req, ADMIN, "add_endpoint_to_project")
    _write(req, lambda s: ep_filter.add_endpoint_to_project(s, project_id, endpoint_id))


def check_endpoint_in_project(req: ApiRequest, project_id: str, endpoint_id: str) -> None:
    _read(req, "check_endpoint_in_project")
    with req.cloud.db.reader() as s:
        ep_filter.check_endpoint_in_project(s, project_id, endpoint_id)


def remove_endpoint_from_project(req: ApiRequest, project_id: str, endpoint_id: str) -> None:
    _authorize(req, ADMIN, "remove_endpoint_from_project")
    _write(req, lambda s: ep_filter.remove_endpoint_from_project(s, project_id, endpoint_id))


def list_project_endpoints(req: ApiRequest, project_id: str) -> dict:
    _read(req, "list_endpoints_for_project")
    with req.cloud.db.reader() as s:
        found = ep_filter.endpoints_of_project(s, project_id)
        return _collection(req, "endpoints", [_endpoint_view(req, ep) for ep in found])


def list_endpoint_projects(req: ApiRequest, endpoint_id: str) -> dict:
    _read(req, "list_projects_for_endpoint")
    with req.cloud.db.reader() as s:
        found = ep_filter.projects_of_endpoint(s, endpoint_id)
        return _collection(req, "projects", [_project_view(req, p) for p in found])


ROUTES: list = [
    ("GET", _PREFIX + "/endpoint_groups", list_groups),
    ("POST", _PREFIX + "/endpoint_groups", create_group),
    ("GET", _GROUP, show_group),
    ("PATCH", _GROUP, update_group),
    ("DELETE", _GROUP, delete_group),
    ("GET", _GROUP + "/endpoints", list_group_endpoints),
    ("GET", _GROUP + "/projects", list_group_projects),
    ("GET", _GROUP + "/projects/{project_id}", show_group_in_project),
    ("PUT", _GROUP + "/projects/{project_id}", add_group_to_project),
    ("DELETE", _GROUP + "/projects/{project_id}", remove_group_from_project),
    ("GET", _PROJECT + "/endpoint_groups", list_project_groups),
    ("GET", _PROJECT + "/endpoints", list_project_endpoints),
    ("GET", _PROJECT + "/endpoints/{endpoint_id}", check_endpoint_in_project),
    ("PUT", _PROJECT + "/endpoints/{endpoint_id}", add_endpoint_to_project),
    ("DELETE", _PROJECT + "/endpoints/{endpoint_id}", remove_endpoint_from_project),
    ("GET", _PREFIX + "/endpoints/{endpoint_id}/projects", list_endpoint_projects),
]
