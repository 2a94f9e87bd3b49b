"""Grants (a user's roles on a project or domain) and role assignments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity.common import _authorize, _collection, _is_true, _revoke, _v3
from cirrus.api.identity.views import _role_view
from cirrus.db.models import Project
from cirrus.errors import BadRequest
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN


def _grant_handlers(target_type: str) -> tuple[Callable[..., Any], ...]:
    """Handlers of /v3/{projects|domains}/{id}/users/{user_id}/roles[/{role_id}]."""
    key = f"{target_type}_id"

    def list_grants(req: ApiRequest, user_id: str, **target: str) -> dict:
        if user_id != req.ctx.user_id:
            _authorize(req, ADMIN, "list_grants")
        with req.cloud.db.reader() as s:
            roles = identity.roles_of_user_on(s, target_type, target[key], user_id)
        return _collection(req, "roles", [_role_view(req, r) for r in roles])

    def check_grant(req: ApiRequest, user_id: str, role_id: str, **target: str) -> Reply:
        if user_id != req.ctx.user_id:
            _authorize(req, ADMIN, "check_grant")
        with req.cloud.db.reader() as s:
            identity.check_grant(s, target_type, target[key], user_id, role_id)
        return Reply(204)

    def create_grant(req: ApiRequest, user_id: str, role_id: str, **target: str) -> None:
        _authorize(req, ADMIN, "create_grant")
        req.cloud.db.run(lambda s: identity.grant_role(s, target_type, target[key], user_id,
                                                       role_id))

    def revoke_grant(req: ApiRequest, user_id: str, role_id: str, **target: str) -> None:
        _authorize(req, ADMIN, "revoke_grant")
        _revoke(req, req.cloud.db.run(lambda s: identity.revoke_role(
            s, target_type, target[key], user_id, role_id)))

    return list_grants, check_grant, create_grant, revoke_grant


_project_grants = _grant_handlers("project")
_domain_grants = _grant_handlers("domain")


def _assignment_view(req: ApiRequest, a: identity.Assignment, names: bool,
                     domain_names: dict[str, str]) -> dict:
    actor_kind, actor = ("users", a.user) if a.user is not None else ("groups", a.group)
    assert actor is not None
    if a.target_type == "system":
        prefix = "system"
    else:
        assert a.target is not None
        prefix = f"{'projects' if a.target_type == 'project' else 'domains'}/{a.target.id}"
    if a.user is not None and a.group is not None:  # effective, through a group membership
        actor_kind, link_actor = "groups", a.group.id
    else:
        link_actor = actor.id
    links = {"assignment": f"{_v3(req)}/{prefix}/{actor_kind}/{link_actor}/roles/"
                           f"{(a.prior_role or a.role).id}"}
    if a.inherited_from is not None:
        links["assignment"] = (f"{_v3(req)}/OS-INHERIT/{a.inherited_from}/{actor_kind}/"
                               f"{link_actor}/roles/{(a.prior_role or a.role).id}"
                               f"/inherited_to_projects")
    if a.user is not None and a.group is not None:
        links["membership"] = f"{_v3(req)}/groups/{a.group.id}/users/{a.user.id}"
    if a.prior_role is not None:
        links["prior_role"] = f"{_v3(req)}/roles/{a.prior_role.id}"
    role: dict[str, Any] = {"id": a.role.id}
    who: dict[str, Any] = {"id": actor.id}
    scope: dict[str, Any] = {"system": {"all": True}}
    if a.target is not None:
        scope = {a.target_type: {"id": a.target.id}}
    if names:
        role["name"] = a.role.name
        if a.role.domain_id:
            role["domain"] = {"id": a.role.domain_id,
                              "name": domain_names.get(a.role.domain_id, a.role.domain_id)}
        who["name"] = actor.name
        who["domain"] = {"id": actor.domain_id,
                         "name": domain_names.get(actor.domain_id, actor.domain_id)}
        if a.target is not None:
            target = scope[a.target_type]
            target["name"] = a.target.name
            if isinstance(a.target, Project):
                target["domain"] = {"id": a.target.domain_id,
                                    "name": domain_names.get(a.target.domain_id,
                                                             a.target.domain_id)}
    return {"role": role, "user" if a.user is not None else "group": who, "scope": scope,
            "links": links}


def list_role_assignments(req: ApiRequest) -> dict:
    user_id = req.query.get("user.id")
    group_id = req.query.get("group.id")
    if not req.ctx.is_admin:  # a non-admin sees their own assignments only
        if user_id not in (None, req.ctx.user_id) or group_id is not None:
            _authorize(req, ADMIN, "list_role_assignments")
        user_id = req.ctx.user_id
    if req.query.get("scope.OS-INHERIT:inherited_to"):  # no inheritance: nothing is inherited
        return _collection(req, "role_assignments", [])
    system = req.query.get("scope.system")
    if system is not None and system != "all":
        raise BadRequest("scope.system: the only system scope is 'all'.")
    given = [k for k in ("scope.project.id", "scope.domain.id", "scope.system")
             if req.query.get(k)]
    if len(given) > 1:
        raise BadRequest(f"{given[1]}: only one of scope.project.id, scope.domain.id and "
                         f"scope.system may be given.")
    if user_id is not None and group_id is not None:
        raise BadRequest("group.id: user.id and group.id may not be given together.")
    names = _is_true(req, "include_names")
    with req.cloud.db.reader() as s:
        found = identity.list_assignments(
            s, user_id=user_id, group_id=group_id, role_id=req.query.get("role.id"),
            project_id=req.query.get("scope.project.id"),
            domain_id=req.query.get("scope.domain.id"), system=system == "all",
            effective=_is_true(req, "effective"),
            include_subtree=_is_true(req, "include_subtree"))
        domain_names = {d.id: d.name for d in identity.list_domains(s)} if names else {}
    return _collection(req, "role_assignments",
                       [_assignment_view(req, a, names, domain_names) for a in found])


_PROJECT_GRANT = "/v3/projects/{project_id}/users/{user_id}/roles"
_DOMAIN_GRANT = "/v3/domains/{domain_id}/users/{user_id}/roles"


ROUTES: list = [
    ("GET", _PROJECT_GRANT, _project_grants[0]),
    ("HEAD", _PROJECT_GRANT + "/{role_id}", _project_grants[1]),
    ("PUT", _PROJECT_GRANT + "/{role_id}", _project_grants[2]),
    ("DELETE", _PROJECT_GRANT + "/{role_id}", _project_grants[3]),
    ("GET", _DOMAIN_GRANT, _domain_grants[0]),
    ("HEAD", _DOMAIN_GRANT + "/{role_id}", _domain_grants[1]),
    ("PUT", _DOMAIN_GRANT + "/{role_id}", _domain_grants[2]),
    ("DELETE", _DOMAIN_GRANT + "/{role_id}", _domain_grants[3]),
    ("GET", "/v3/role_assignments", list_role_assignments),
]
