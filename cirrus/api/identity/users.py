"""Users and their passwords."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import schemas
from cirrus.api.identity.common import (
    NOAUTH,
    _authorize,
    _body,
    _bool_filter,
    _collection,
    _counting_failed_logins,
    _domain_for_writes,
    _policy,
    _reader_domain,
    _revoke,
)
from cirrus.api.identity.views import _project_view, _user_view
from cirrus.errors import NotFound
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN


def _ensure_self_or_admin(req: ApiRequest, user_id: str) -> None:
    """Another user does not exist for a non-admin caller (a domain reader sees its domain's)."""
    if user_id != req.ctx.user_id and not req.ctx.is_admin:
        domain_id = _reader_domain(req)
        if domain_id is not None:
            with req.cloud.db.reader() as s:
                user = identity.get_user(s, user_id)
            if user.domain_id == domain_id:
                return
        raise NotFound(f"Could not find user: {user_id}.")


def list_users(req: ApiRequest) -> dict:
    # Keystone's default policy: admins list everyone, a reader scoped to a domain that
    # domain's users; anyone else is refused (they read themselves at /v3/users/{id}).
    domain_id = req.query.get("domain_id")
    if not req.ctx.is_admin:
        reader_domain = _reader_domain(req)
        if reader_domain is None:
            _authorize(req, ADMIN, "list_users")
        if domain_id not in (None, reader_domain):
            return _collection(req, "users", [])
        domain_id = reader_domain
    with req.cloud.db.reader() as s:
        users = identity.list_users(s, name=req.query.get("name"),
                                    domain_id=domain_id,
                                    enabled=_bool_filter(req, "enabled"))
    return _collection(req, "users", [_user_view(req, u) for u in users])


def show_user(req: ApiRequest, user_id: str) -> dict:
    _ensure_self_or_admin(req, user_id)
    with req.cloud.db.reader() as s:
        user = identity.get_user(s, user_id)
    return {"user": _user_view(req, user)}


def create_user(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_user")
    fields = _body(req, schemas.user_create, "user")
    default_domain = _domain_for_writes(req)
    policy = _policy(req)
    user = req.cloud.db.run(lambda s: identity.create_user(s, fields, default_domain, policy))
    return Reply(201, {"user": _user_view(req, user)})


def update_user(req: ApiRequest, user_id: str) -> dict:
    _authorize(req, ADMIN, "update_user")
    fields = _body(req, schemas.user_update, "user")
    policy = _policy(req)
    user, revocations = req.cloud.db.run(lambda s: identity.update_user(s, user_id, fields,
                                                                         policy))
    _revoke(req, revocations)
    return {"user": _user_view(req, user)}


def delete_user(req: ApiRequest, user_id: str) -> None:
    _authorize(req, ADMIN, "delete_user")
    _revoke(req, req.cloud.db.run(lambda s: identity.delete_user(s, user_id)))


def change_password(req: ApiRequest, user_id: str) -> None:
    # No token needed (so an expired password can be changed): the original one authenticates.
    fields = _body(req, schemas.password_change, "user")
    policy = _policy(req)
    with _counting_failed_logins(req, policy):
        revocations = req.cloud.db.run(lambda s: identity.change_password(
            s, user_id, fields["original_password"], fields["password"], policy))
    _revoke(req, revocations)


def list_user_projects(req: ApiRequest, user_id: str) -> dict:
    _ensure_self_or_admin(req, user_id)
    with req.cloud.db.reader() as s:
        identity.get_user(s, user_id)
        projects = identity.projects_of_user(s, user_id)
    return _collection(req, "projects", [_project_view(req, p) for p in projects])


ROUTES: list = [
    ("GET", "/v3/users", list_users),
    ("POST", "/v3/users", create_user),
    ("GET", "/v3/users/{user_id}", show_user),
    ("PATCH", "/v3/users/{user_id}", update_user),
    ("DELETE", "/v3/users/{user_id}", delete_user),
    ("GET", "/v3/users/{user_id}/projects", list_user_projects),
    ("POST", "/v3/users/{user_id}/password", change_password, NOAUTH),
]
