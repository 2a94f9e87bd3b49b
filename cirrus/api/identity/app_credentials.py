"""Application credentials: /v3/users/{user_id}/application_credentials.

A user manages their own; an administrator may list, show and delete anyone's. The secret
is in the creation's response only. A token from a restricted application credential may
not create or delete application credentials.
"""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import catalog_schemas
from cirrus.api.identity.common import _body, _collection, _naive_iso, _self_link
from cirrus.errors import BadRequest, Forbidden, NotFound
from cirrus.identity.service import app_credentials


def _view(req: ApiRequest, cred: Any, secret: str | None = None) -> dict:
    view = {"id": cred.id, "name": cred.name, "description": cred.description or None,
            "user_id": cred.user_id, "project_id": cred.project_id,
            "roles": [{"id": r["id"], "name": r["name"], "domain_id": None}
                      for r in cred.roles],
            "unrestricted": cred.unrestricted, "expires_at": _naive_iso(cred.expires_at),
            "system": None, "access_rules": [],
            "links": {"self": f"{_self_link(req, 'users', cred.user_id)['self']}"
                              f"/application_credentials/{cred.id}"}}
    if secret is not None:
        view["secret"] = secret
    return view


def _owner_or_admin(req: ApiRequest, user_id: str) -> None:
    """Another user's credentials do not exist for a non-admin caller."""
    if user_id != req.require_user() and not req.ctx.is_admin:
        raise NotFound(f"Could not find user: {user_id}.")


def _not_restricted(req: ApiRequest, action: str) -> None:
    cred = req.claims.application_credential if req.claims else None
    if cred is not None and cred["restricted"]:
        raise Forbidden(f"You are not authorized to perform the requested action: "
                        f"Using method 'application_credential' is not allowed for managing "
                        f"additional application credentials ({action}).")


def create_credential(req: ApiRequest, user_id: str) -> Reply:
    if user_id != req.require_user():  # only for oneself, even an administrator
        raise Forbidden("You are not authorized to perform the requested action: "
                        "identity:create_application_credential.")
    _not_restricted(req, "identity:create_application_credential")
    fields = _body(req, catalog_schemas.application_credential_create,
                   "application_credential")
    claims = req.claims
    if claims is None or not claims.project_id:
        raise BadRequest("Invalid input for field/attribute application_credential. An "
                         "application credential needs a project-scoped token.")
    project_id, roles = claims.project_id, claims.roles
    cred, secret = req.cloud.db.run(
        lambda s: app_credentials.create(s, user_id, project_id, roles, fields))
    return Reply(201, {"application_credential": _view(req, cred, secret)})


def list_credentials(req: ApiRequest, user_id: str) -> dict:
    _owner_or_admin(req, user_id)
    with req.cloud.db.reader() as s:
        found = app_credentials.list_for_user(s, user_id, req.query.get("name"))
    return _collection(req, "application_credentials", [_view(req, c) for c in found])


def show_credential(req: ApiRequest, user_id: str, credential_id: str) -> dict:
    _owner_or_admin(req, user_id)
    with req.cloud.db.reader() as s:
        cred = app_credentials.get(s, user_id, credential_id)
    return {"application_credential": _view(req, cred)}


def delete_credential(req: ApiRequest, user_id: str, credential_id: str) -> None:
    _owner_or_admin(req, user_id)
    _not_restricted(req, "identity:delete_application_credential")
    deleted = req.cloud.db.run(lambda s: app_credentials.delete(s, user_id, credential_id))
    req.cloud.tokens.revoke_user(deleted)


ROUTES: list = [
    ("GET", "/v3/users/{user_id}/application_credentials", list_credentials),
    ("POST", "/v3/users/{user_id}/application_credentials", create_credential),
    ("GET", "/v3/users/{user_id}/application_credentials/{credential_id}", show_credential),
    ("DELETE", "/v3/users/{user_id}/application_credentials/{credential_id}",
     delete_credential),
]
