"""Networking quotas: /v2.0/quotas (Neutron's quotas and quota_details extensions).

Members read their own project's; admins read and change any project's. Limits are
network, subnet, port, security_group, security_group_rule, router and floatingip; -1 is
unlimited.
`check_limit: true` in an update refuses a limit below what the project already uses.
"""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.network import schemas
from cirrus.api.validation import to_bool
from cirrus.errors import BadRequest
from cirrus.network import quotas as service
from cirrus.network.access import ADMIN, READ, require
from cirrus.network.errors import PolicyNotAuthorized

UPDATE = {"type": "object", "properties": {
    **{name: schemas.QUOTA_VALUE for name in service.RESOURCES},
    "check_limit": schemas.boolean}}


def _check_reader(req: ApiRequest, project_id: str) -> None:
    require(req.ctx, READ, "get_quota")
    if project_id != req.ctx.project_id and not req.ctx.is_admin:
        raise PolicyNotAuthorized("get_quota")


def list_quotas(req: ApiRequest) -> dict:
    require(req.ctx, ADMIN, "get_quota")
    with req.cloud.db.reader() as s:
        rows = []
        for project_id in service.projects_with_limits(s):
            limits = service.get_limits(s, req.cloud.settings, project_id)
            rows.append({**limits, "project_id": project_id, "tenant_id": project_id})
    return {"quotas": rows}


def show_quota(req: ApiRequest, project_id: str) -> dict:
    _check_reader(req, project_id)
    with req.cloud.db.reader() as s:
        return {"quota": service.get_limits(s, req.cloud.settings, project_id)}


def show_default_quota(req: ApiRequest, project_id: str) -> dict:
    _check_reader(req, project_id)
    return {"quota": service.defaults(req.cloud.settings)}


def show_quota_details(req: ApiRequest, project_id: str) -> dict:
    _check_reader(req, project_id)
    with req.cloud.db.reader() as s:
        limits = service.get_limits(s, req.cloud.settings, project_id)
        used = service.usage_report(s, project_id)
    return {"quota": {name: {"used": used[name], "limit": limits[name], "reserved": 0}
                      for name in service.RESOURCES}}


def update_quota(req: ApiRequest, project_id: str) -> dict:
    require(req.ctx, ADMIN, "update_quota")
    body = schemas.unwrap(req.json, "quota")
    schemas.check(UPDATE, body)
    values = {name: int(value) for name, value in body.items() if name != "check_limit"}
    for name, value in values.items():
        if value > service.MAX_LIMIT:
            raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is too large - "
                             f"must be no larger than '{service.MAX_LIMIT}'.")
    check_limit = to_bool(body.get("check_limit", False))

    def work(s) -> dict:
        if check_limit:
            over = service.over_usage(s, project_id, values)
            if over:
                raise BadRequest(f"Quota limit for {', '.join(over)} must be greater than or "
                                 "equal to the usage of the project.")
        service.set_limits(s, project_id, values)
        return service.get_limits(s, req.cloud.settings, project_id)

    return {"quota": req.cloud.db.run(work)}


def delete_quota(req: ApiRequest, project_id: str) -> Reply:
    require(req.ctx, ADMIN, "delete_quota")
    req.cloud.db.run(lambda s: service.delete_limits(s, project_id))
    return Reply(204)


ROUTES = [
    ("GET", "/v2.0/quotas", list_quotas),
    ("GET", "/v2.0/quotas/{project_id}", show_quota),
    ("PUT", "/v2.0/quotas/{project_id}", update_quota),
    ("DELETE", "/v2.0/quotas/{project_id}", delete_quota),
    ("GET", "/v2.0/quotas/{project_id}/default", show_default_quota),
    ("GET", "/v2.0/quotas/{project_id}/details", show_quota_details),
    ("GET", "/v2.0/quotas/{project_id}/details.json", show_quota_details),
]
