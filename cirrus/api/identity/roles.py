"""Roles."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import schemas
from cirrus.api.identity.common import _authorize, _body, _collection, _revoke
from cirrus.api.identity.views import _role_view
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN, READ


def list_roles(req: ApiRequest) -> dict:
    _authorize(req, READ, "list_roles")
    with req.cloud.db.reader() as s:
        roles = identity.list_roles(s, name=req.query.get("name"),
                                    domain_id=req.query.get("domain_id"))
    return _collection(req, "roles", [_role_view(req, r) for r in roles])


def show_role(req: ApiRequest, role_id: str) -> dict:
    _authorize(req, READ, "get_role")
    with req.cloud.db.reader() as s:
        role = identity.get_role(s, role_id)
    return {"role": _role_view(req, role)}


def create_role(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_role")
    fields = _body(req, schemas.role_create, "role")
    role = req.cloud.db.run(lambda s: identity.create_role(s, fields))
    return Reply(201, {"role": _role_view(req, role)})


def update_role(req: ApiRequest, role_id: str) -> dict:
    _authorize(req, ADMIN, "update_role")
    fields = _body(req, schemas.role_update, "role")
    role = req.cloud.db.run(lambda s: identity.update_role(s, role_id, fields))
    return {"role": _role_view(req, role)}


def delete_role(req: ApiRequest, role_id: str) -> None:
    _authorize(req, ADMIN, "delete_role")
    _revoke(req, req.cloud.db.run(lambda s: identity.delete_role(s, role_id)))


ROUTES: list = [
    ("GET", "/v3/roles", list_roles),
    ("POST", "/v3/roles", create_role),
    ("GET", "/v3/roles/{role_id}", show_role),
    ("PATCH", "/v3/roles/{role_id}", update_role),
    ("DELETE", "/v3/roles/{role_id}", delete_role),
]
