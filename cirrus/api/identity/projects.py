"""Projects."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import schemas
from cirrus.api.identity.common import (
    _authorize,
    _body,
    _bool_filter,
    _collection,
    _domain_for_writes,
    _is_true,
    _reader_domain,
    _revoke,
)
from cirrus.api.identity.domains import _related_domain_ids
from cirrus.api.identity.project_tree import hierarchy
from cirrus.api.identity.views import _domain_project_view, _project_view
from cirrus.errors import NotFound
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN
from cirrus.identity.service import domain_projects, project_tree


def _visible_project_ids(req: ApiRequest, s: Any) -> set[str] | None:
    """None for all (an admin); else the caller's projects, and a domain reader's domain's."""
    if req.ctx.is_admin:
        return None
    visible = {p.id for p in identity.projects_of_user(s, req.require_user())}
    domain_id = _reader_domain(req)
    if domain_id is not None:
        visible |= {p.id for p in identity.list_projects(s, domain_id=domain_id)}
    return visible


def _list_domain_projects(req: ApiRequest) -> dict:
    """?is_domain=true: the domains, as projects. Only an admin sees them (a domain reader's
    rule is on `domain_id`, which a domain does not have)."""
    if not req.ctx.is_admin or any(req.query.get(k) for k in ("domain_id", "parent_id", "tags",
                                                                "tags-any")):
        return _collection(req, "projects", [])
    with req.cloud.db.reader() as s:
        domains = identity.list_domains(s, name=req.query.get("name"),
                                        enabled=_bool_filter(req, "enabled"))
    return _collection(req, "projects", [_domain_project_view(req, d) for d in domains])


def list_projects(req: ApiRequest) -> dict:
    if not req.ctx.is_admin and _reader_domain(req) is None:
        # Keystone's default policy: a project's members list their projects at
        # /v3/auth/projects or /v3/users/{own id}/projects, not here.
        _authorize(req, ADMIN, "list_projects")
    if _is_true(req, "is_domain"):
        return _list_domain_projects(req)
    # Without is_domain (or with is_domain=false): the regular projects, as Keystone.
    with req.cloud.db.reader() as s:
        projects = identity.list_projects(
            s, name=req.query.get("name"), domain_id=req.query.get("domain_id"),
            enabled=_bool_filter(req, "enabled"), parent_id=req.query.get("parent_id"),
            only_ids=_visible_project_ids(req, s))
    projects = project_tree.filter_by_tags(projects, dict(req.query))
    return _collection(req, "projects", [_project_view(req, p) for p in projects])


def show_project(req: ApiRequest, project_id: str) -> dict:
    with req.cloud.db.reader() as s:
        if domain_projects.is_domain(s, project_id):
            if not req.ctx.is_admin and project_id not in _related_domain_ids(req, s):
                raise NotFound(f"Could not find project: {project_id}.")
            return {"project": _domain_project_view(req, identity.get_domain(s, project_id))}
        visible = _visible_project_ids(req, s)
        if visible is not None and project_id not in visible:
            raise NotFound(f"Could not find project: {project_id}.")
        project = identity.get_project(s, project_id)
        return {"project": {**_project_view(req, project),
                            **hierarchy(req, s, project, visible)}}


def create_project(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_project")
    fields = _body(req, schemas.project_create, "project")
    if fields.get("is_domain"):
        domain = req.cloud.db.run(lambda s: domain_projects.create_domain_project(s, fields))
        return Reply(201, {"project": _domain_project_view(req, domain)})
    default_domain = _domain_for_writes(req)
    project = req.cloud.db.run(lambda s: identity.create_project(s, fields, default_domain))
    return Reply(201, {"project": _project_view(req, project)})


def update_project(req: ApiRequest, project_id: str) -> dict:
    _authorize(req, ADMIN, "update_project")
    fields = _body(req, schemas.project_update, "project")

    def work(s: Any) -> tuple[dict, list[identity.Revocation]]:
        if domain_projects.is_domain(s, project_id):
            domain, revocations = domain_projects.update_domain_project(s, project_id, fields)
            return _domain_project_view(req, domain), revocations
        project, revocations = identity.update_project(s, project_id, fields)
        return _project_view(req, project), revocations

    view, revocations = req.cloud.db.run(work)
    _revoke(req, revocations)
    return {"project": view}


def delete_project(req: ApiRequest, project_id: str) -> None:
    """A project acting as a domain goes by the domain rules: disabled first, then deleted
    with everything in it."""
    _authorize(req, ADMIN, "delete_project")

    def work(s: Any) -> list[identity.Revocation]:
        if domain_projects.is_domain(s, project_id):
            return identity.delete_domain(s, project_id)
        return identity.delete_project(s, project_id)

    _revoke(req, req.cloud.db.run(work))


ROUTES: list = [
    ("GET", "/v3/projects", list_projects),
    ("POST", "/v3/projects", create_project),
    ("GET", "/v3/projects/{project_id}", show_project),
    ("PATCH", "/v3/projects/{project_id}", update_project),
    ("DELETE", "/v3/projects/{project_id}", delete_project),
]
