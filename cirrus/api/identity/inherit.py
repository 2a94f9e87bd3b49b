"""OS-INHERIT: roles granted on a domain or project for every project below it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity.common import _authorize, _collection, _revoke
from cirrus.api.identity.views import _role_view
from cirrus.identity.policy import ADMIN
from cirrus.identity.service import inherit


def _handlers(target_type: str, actor_type: str) -> tuple[Callable[..., Any], ...]:
    key, actor_key = f"{target_type}_id", f"{actor_type}_id"

    def list_roles(req: ApiRequest, **ids: str) -> dict:
        _authorize(req, ADMIN, "list_inherited_grants")
        with req.cloud.db.reader() as s:
            roles = inherit.list_inherited_roles(s, target_type, ids[key], actor_type,
                                                 ids[actor_key])
        return _collection(req, "roles", [_role_view(req, r) for r in roles])

    def check(req: ApiRequest, role_id: str, **ids: str) -> Reply:
        _authorize(req, ADMIN, "check_inherited_grant")
        with req.cloud.db.reader() as s:
            inherit.check_inherited(s, target_type, ids[key], actor_type, ids[actor_key],
                                    role_id)
        return Reply(204)

    def grant(req: ApiRequest, role_id: str, **ids: str) -> None:
        _authorize(req, ADMIN, "create_inherited_grant")
        req.cloud.db.run(lambda s: inherit.grant_inherited(
            s, target_type, ids[key], actor_type, ids[actor_key], role_id))

    def revoke(req: ApiRequest, role_id: str, **ids: str) -> None:
        _authorize(req, ADMIN, "revoke_inherited_grant")
        _revoke(req, req.cloud.db.run(lambda s: inherit.revoke_inherited(
            s, target_type, ids[key], actor_type, ids[actor_key], role_id)))

    return list_roles, check, grant, revoke


ROUTES: list = []
for _target in ("domain", "project"):
    for _actor in ("user", "group"):
        _h = _handlers(_target, _actor)
        _base = (f"/v3/OS-INHERIT/{_target}s/{{{_target}_id}}/{_actor}s/{{{_actor}_id}}/roles")
        ROUTES += [("GET", _base + "/inherited_to_projects", _h[0]),
                   ("HEAD", _base + "/{role_id}/inherited_to_projects", _h[1]),
                   ("PUT", _base + "/{role_id}/inherited_to_projects", _h[2]),
                   ("DELETE", _base + "/{role_id}/inherited_to_projects", _h[3])]
