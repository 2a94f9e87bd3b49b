"""The system scope: /v3/auth/system and role grants on the system (/v3/system/...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity.common import _authorize, _collection, _revoke
from cirrus.api.identity.views import _role_view
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN

SYSTEM = identity.SYSTEM_ID


def auth_system(req: ApiRequest) -> dict:
    """[{"all": true}] when the caller holds a role on the system, else []."""
    user_id = req.require_user()
    with req.cloud.db.reader() as s:
        found = identity.list_assignments(s, user_id=user_id, system=True, effective=True)
    return _collection(req, "system", [{"all": True}] if found else [])


def _system_grant_handlers(actor_type: str) -> tuple[Callable[..., Any], ...]:
    """Handlers of /v3/system/{users|groups}/{id}/roles[/{role_id}]."""

    def list_grants(req: ApiRequest, actor_id: str) -> dict:
        if not (actor_type == "user" and actor_id == req.ctx.user_id):
            _authorize(req, ADMIN, "list_system_grants")
        with req.cloud.db.reader() as s:
            roles = identity.roles_of_user_on(s, "system", SYSTEM, actor_id, actor_type)
        return _collection(req, "roles", [_role_view(req, r) for r in roles])

    def check_grant(req: ApiRequest, actor_id: str, role_id: str) -> Reply:
        if not (actor_type == "user" and actor_id == req.ctx.user_id):
            _authorize(req, ADMIN, "check_system_grant")
        with req.cloud.db.reader() as s:
            identity.check_grant(s, "system", SYSTEM, actor_id, role_id, actor_type)
        return Reply(204)

    def create_grant(req: ApiRequest, actor_id: str, role_id: str) -> None:
        _authorize(req, ADMIN, "create_system_grant")
        req.cloud.db.run(lambda s: identity.grant_role(s, "system", SYSTEM, actor_id, role_id,
                                                       actor_type))

    def revoke_grant(req: ApiRequest, actor_id: str, role_id: str) -> None:
        _authorize(req, ADMIN, "revoke_system_grant")
        _revoke(req, req.cloud.db.run(lambda s: identity.revoke_role(
            s, "system", SYSTEM, actor_id, role_id, actor_type)))

    return list_grants, check_grant, create_grant, revoke_grant


_users = _system_grant_handlers("user")
_groups = _system_grant_handlers("group")

ROUTES: list = [("GET", "/v3/auth/system", auth_system)]
for _kind, _handlers in (("users", _users), ("groups", _groups)):
    _base = f"/v3/system/{_kind}/{{actor_id}}/roles"
    ROUTES += [("GET", _base, _handlers[0]), ("HEAD", _base + "/{role_id}", _handlers[1]),
               ("PUT", _base + "/{role_id}", _handlers[2]),
               ("DELETE", _base + "/{role_id}", _handlers[3])]
