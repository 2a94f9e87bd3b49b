"""Role inference rules: /v3/roles/{prior}/implies/{implied} and /v3/role_inferences."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity.common import _authorize, _v3
from cirrus.db.models import Role
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN


def _ref(req: ApiRequest, role: Role) -> dict:
    return {"id": role.id, "name": role.name, "links": {"self": f"{_v3(req)}/roles/{role.id}"}}


def _rule(req: ApiRequest, prior: Role, implied: Role) -> dict:
    return {"role_inference": {"prior_role": _ref(req, prior), "implies": _ref(req, implied)},
            "links": {"self": f"{_v3(req)}/roles/{prior.id}/implies/{implied.id}"}}


def create_rule(req: ApiRequest, prior_role_id: str, implied_role_id: str) -> Reply:
    _authorize(req, ADMIN, "create_implied_role")
    prior, implied = req.cloud.db.run(
        lambda s: identity.create_inference(s, prior_role_id, implied_role_id))
    return Reply(201, _rule(req, prior, implied))


def show_rule(req: ApiRequest, prior_role_id: str, implied_role_id: str) -> dict:
    _authorize(req, ADMIN, "get_implied_role")
    with req.cloud.db.reader() as s:
        prior, implied = identity.get_inference(s, prior_role_id, implied_role_id)
    return _rule(req, prior, implied)


def check_rule(req: ApiRequest, prior_role_id: str, implied_role_id: str) -> Reply:
    _authorize(req, ADMIN, "check_implied_role")
    with req.cloud.db.reader() as s:
        identity.get_inference(s, prior_role_id, implied_role_id)
    return Reply(204)


def delete_rule(req: ApiRequest, prior_role_id: str, implied_role_id: str) -> None:
    _authorize(req, ADMIN, "delete_implied_role")
    req.cloud.db.run(lambda s: identity.delete_inference(s, prior_role_id, implied_role_id))


def list_implied(req: ApiRequest, prior_role_id: str) -> dict:
    _authorize(req, ADMIN, "list_implied_roles")
    with req.cloud.db.reader() as s:
        prior, implied = identity.implied_by(s, prior_role_id)
    return {"role_inference": {"prior_role": _ref(req, prior),
                               "implies": [_ref(req, r) for r in implied]},
            "links": {"self": f"{_v3(req)}/roles/{prior.id}/implies"}}


def list_inferences(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_role_inference_rules")
    with req.cloud.db.reader() as s:
        rules = identity.all_inferences(s)
    return {"role_inferences": [{"prior_role": _ref(req, prior),
                                 "implies": [_ref(req, r) for r in implied]}
                                for prior, implied in rules],
            "links": {"self": f"{_v3(req)}/role_inferences"}}


_RULE = "/v3/roles/{prior_role_id}/implies/{implied_role_id}"

ROUTES: list = [
    ("GET", "/v3/roles/{prior_role_id}/implies", list_implied),
    ("PUT", _RULE, create_rule),
    ("GET", _RULE, show_rule),
    ("HEAD", _RULE, check_rule),
    ("DELETE", _RULE, delete_rule),
    ("GET", "/v3/role_inferences", list_inferences),
]
