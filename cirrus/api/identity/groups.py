"""Groups, their members, and group role grants on projects and domains.

Keystone's default policies: an admin manages every group; a reader scoped to a domain sees
that domain's groups and their members; anyone may list their own groups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import group_schemas
from cirrus.api.identity.common import (
    _authorize,
    _body,
    _collection,
    _domain_for_writes,
    _revoke,
    _self_link,
)
from cirrus.api.identity.views import _role_view, _user_view
from cirrus.db.models import Group
from cirrus.errors import Forbidden
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN, READ


def _group_view(req: ApiRequest, g: Group) -> dict:
    return {**(g.extra or {}), "id": g.id, "name": g.name, "domain_id": g.domain_id,
            "description": g.description or "", "links": _self_link(req, "groups", g.id)}


def _scoped_domain(req: ApiRequest) -> str | None:
    """The domain of a domain-scoped token, else None."""
    claims = req.claims
    if claims is not None and not claims.project_id and claims.project_domain_id:
        return claims.project_domain_id
    return None


def _authorize_domain_read(req: ApiRequest, domain_id: str | None, action: str) -> None:
    """Admins; or readers whose token is scoped to the domain."""
    if req.ctx.is_admin:
        return
    _authorize(req, READ, action)
    if domain_id is None or _scoped_domain(req) != domain_id:
        raise Forbidden(f"You are not authorized to perform the requested action: "
                        f"identity:{action}.")


def list_groups(req: ApiRequest) -> dict:
    domain_id = req.query.get("domain_id")
    if not req.ctx.is_admin:
        domain_id = domain_id or _scoped_domain(req)
        _authorize_domain_read(req, domain_id, "list_groups")
    with req.cloud.db.reader() as s:
        groups = identity.list_groups(s, name=req.query.get("name"), domain_id=domain_id)
    return _collection(req, "groups", [_group_view(req, g) for g in groups])


def show_group(req: ApiRequest, group_id: str) -> dict:
    with req.cloud.db.reader() as s:
        group = identity.get_group(s, group_id) if req.ctx.is_admin else None
        if group is None:
            _authorize(req, READ, "get_group")
            group = identity.get_group(s, group_id)
            _authorize_domain_read(req, group.domain_id, "get_group")
    return {"group": _group_view(req, group)}


def create_group(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_group")
    fields = _body(req, group_schemas.group_create, "group")
    default_domain = _domain_for_writes(req)
    group = req.cloud.db.run(lambda s: identity.create_group(s, fields, default_domain))
    return Reply(201, {"group": _group_view(req, group)})


def update_group(req: ApiRequest, group_id: str) -> dict:
    _authorize(req, ADMIN, "update_group")
    fields = _body(req, group_schemas.group_update, "group")
    group = req.cloud.db.run(lambda s: identity.update_group(s, group_id, fields))
    return {"group": _group_view(req, group)}


def delete_group(req: ApiRequest, group_id: str) -> None:
    _authorize(req, ADMIN, "delete_group")
    _revoke(req, req.cloud.db.run(lambda s: identity.delete_group(s, group_id)))


def list_group_users(req: ApiRequest, group_id: str) -> dict:
    with req.cloud.db.reader() as s:
        if not req.ctx.is_admin:
            _authorize(req, READ, "list_users_in_group")
            _authorize_domain_read(req, identity.get_group(s, group_id).domain_id,
                                   "list_users_in_group")
        users = identity.list_group_users(s, group_id)
    return _collection(req, "users", [_user_view(req, u) for u in users])


def add_group_user(req: ApiRequest, group_id: str, user_id: str) -> None:
    _authorize(req, ADMIN, "add_user_to_group")
    req.cloud.db.run(lambda s: identity.add_user_to_group(s, group_id, user_id))


def check_group_user(req: ApiRequest, group_id: str, user_id: str) -> Reply:
    if user_id != req.ctx.user_id:
        with req.cloud.db.reader() as s:
            if not req.ctx.is_admin:
                _authorize(req, READ, "check_user_in_group")
                _authorize_domain_read(req, identity.get_group(s, group_id).domain_id,
                                       "check_user_in_group")
    with req.cloud.db.reader() as s:
        identity.check_user_in_group(s, group_id, user_id)
    return Reply(204)


def remove_group_user(req: ApiRequest, group_id: str, user_id: str) -> None:
    _authorize(req, ADMIN, "remove_user_from_group")
    _revoke(req, req.cloud.db.run(lambda s: identity.remove_user_from_group(
        s, group_id, user_id)))


def list_user_groups(req: ApiRequest, user_id: str) -> dict:
    if user_id != req.ctx.user_id:
        _authorize(req, ADMIN, "list_groups_for_user")
    with req.cloud.db.reader() as s:
        groups = identity.groups_of_user(s, user_id)
    return _collection(req, "groups", [_group_view(req, g) for g in groups])


def _group_grant_handlers(target_type: str) -> tuple[Callable[..., Any], ...]:
    """Handlers of /v3/{projects|domains}/{id}/groups/{group_id}/roles[/{role_id}]."""
    key = f"{target_type}_id"

    def list_grants(req: ApiRequest, group_id: str, **target: str) -> dict:
        _authorize(req, ADMIN, "list_grants")
        with req.cloud.db.reader() as s:
            roles = identity.roles_of_user_on(s, target_type, target[key], group_id, "group")
        return _collection(req, "roles", [_role_view(req, r) for r in roles])

    def check_grant(req: ApiRequest, group_id: str, role_id: str, **target: str) -> Reply:
        _authorize(req, ADMIN, "check_grant")
        with req.cloud.db.reader() as s:
            identity.check_grant(s, target_type, target[key], group_id, role_id, "group")
        return Reply(204)

    def create_grant(req: ApiRequest, group_id: str, role_id: str, **target: str) -> None:
        _authorize(req, ADMIN, "create_grant")
        req.cloud.db.run(lambda s: identity.grant_role(s, target_type, target[key], group_id,
                                                       role_id, "group"))

    def revoke_grant(req: ApiRequest, group_id: str, role_id: str, **target: str) -> None:
        _authorize(req, ADMIN, "revoke_grant")
        _revoke(req, req.cloud.db.run(lambda s: identity.revoke_role(
            s, target_type, target[key], group_id, role_id, "group")))

    return list_grants, check_grant, create_grant, revoke_grant


_project = _group_grant_handlers("project")
_domain = _group_grant_handlers("domain")
_PROJECT_GRANT = "/v3/projects/{project_id}/groups/{group_id}/roles"
_DOMAIN_GRANT = "/v3/domains/{domain_id}/groups/{group_id}/roles"
_MEMBER = "/v3/groups/{group_id}/users/{user_id}"

ROUTES: list = [
    ("GET", "/v3/groups", list_groups),
    ("POST", "/v3/groups", create_group),
    ("GET", "/v3/groups/{group_id}", show_group),
    ("PATCH", "/v3/groups/{group_id}", update_group),
    ("DELETE", "/v3/groups/{group_id}", delete_group),
    ("GET", "/v3/groups/{group_id}/users", list_group_users),
    ("PUT", _MEMBER, add_group_user),
    ("HEAD", _MEMBER, check_group_user),
    ("DELETE", _MEMBER, remove_group_user),
    ("GET", "/v3/users/{user_id}/groups", list_user_groups),
    ("GET", _PROJECT_GRANT, _project[0]),
    ("HEAD", _PROJECT_GRANT + "/{role_id}", _project[1]),
    ("PUT", _PROJECT_GRANT + "/{role_id}", _project[2]),
    ("DELETE", _PROJECT_GRANT + "/{role_id}", _project[3]),
    ("GET", _DOMAIN_GRANT, _domain[0]),
    ("HEAD", _DOMAIN_GRANT + "/{role_id}", _domain[1]),
    ("PUT", _DOMAIN_GRANT + "/{role_id}", _domain[2]),
    ("DELETE", _DOMAIN_GRANT + "/{role_id}", _domain[3]),
]
