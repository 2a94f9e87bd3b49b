"""Security groups and rules: /v2.0/security-groups and /v2.0/security-group-rules.

Every change is sent to the hosts it concerns, which enforce it with nftables
(cirrus.network.enforcement; docs/networking.md). Listing or showing makes the caller's project `default` group if it has none, as Neutron does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.agent.rpcapi import AgentAPI
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.network import schemas
from cirrus.api.network.listing import finish, parse_listing, select_fields
from cirrus.api.network.views import rule_view, security_group_view
from cirrus.api.validation import to_bool
from cirrus.db.models import SecurityGroup
from cirrus.errors import BadRequest
from cirrus.network import enforcement
from cirrus.network import security_groups as service
from cirrus.network.access import READ, require

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

GROUP_KEYS = set(security_group_view(SecurityGroup()))
RULE_KEYS = set(rule_view(SecurityGroup(), {key: None for key in (
    "id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
    "remote_ip_prefix", "remote_group_id")}))


def _ensure_default(req: ApiRequest) -> None:
    """Make the caller's default group on first use (a write only the first time)."""
    project_id = req.ctx.project_id
    if not project_id:
        return
    with req.cloud.db.reader() as s:
        if service.has_default_group(s, project_id):
            return
    req.cloud.db.run(lambda s: service.ensure_default_group(s, project_id))


def _group_spec(body: dict) -> dict[str, Any]:
    spec: dict[str, Any] = {key: body[key] for key in ("name", "description") if key in body}
    if "stateful" in body:
        spec["stateful"] = to_bool(body["stateful"])
    return spec


def list_groups(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_security_group")
    listing = parse_listing(req, GROUP_KEYS)
    _ensure_default(req)
    with req.cloud.db.reader() as s:
        views = [security_group_view(g) for g in service.list_groups(s, req.ctx)]
    return finish(req, "security_groups", views, listing)


def create_group(req: ApiRequest) -> Reply:
    body = schemas.unwrap(req.json, "security_group")
    schemas.check(schemas.SECURITY_GROUP_CREATE, body)
    spec = _group_spec(body)
    owner = schemas.requested_owner(body)
    view = req.cloud.db.run(lambda s: security_group_view(service.create_group(
        s, req.ctx, req.cloud.settings, name=spec.get("name", ""),
        description=spec.get("description", ""), stateful=spec.get("stateful", True),
        project_id=owner)))
    return Reply(201, {"security_group": view})


def show_group(req: ApiRequest, group_id: str) -> dict:
    require(req.ctx, READ, "get_security_group")
    _ensure_default(req)
    with req.cloud.db.reader() as s:
        view = security_group_view(service.get_group(s, req.ctx, group_id))
    return {"security_group": select_fields(view, req.query.getlist("fields"))}


def update_group(req: ApiRequest, group_id: str) -> dict:
    body = schemas.unwrap(req.json, "security_group")
    schemas.check(schemas.SECURITY_GROUP_UPDATE, body, readonly=schemas.SECURITY_GROUP_READONLY)
    spec = _group_spec(body)
    view = req.cloud.db.run(lambda s: security_group_view(
        service.update_group(s, req.ctx, group_id, spec)))
    return {"security_group": view}


def delete_group(req: ApiRequest, group_id: str) -> Reply:
    def work(s: Session) -> set[str]:
        hosts = enforcement.hosts_using_groups(s, {group_id})  # rules naming it go too
        service.delete_group(s, req.ctx, group_id)
        return hosts

    _enforce(req, req.cloud.db.run(work))
    return Reply(204)


def _enforce(req: ApiRequest, hosts: set[str]) -> None:
    """Send the hosts concerned their new filter state, after the commit (issue 14, sg)."""
    enforcement.send(req.cloud.db, AgentAPI(req.cloud.bus), req.ctx, hosts)


def list_rules(req: ApiRequest) -> dict:
    require(req.ctx, READ, "get_security_group_rule")
    listing = parse_listing(req, RULE_KEYS)
    _ensure_default(req)
    with req.cloud.db.reader() as s:
        views = [rule_view(g, r) for g, r in service.all_rules(s, req.ctx)]
    return finish(req, "security_group_rules", views, listing)


def _port_value(key: str, value: object) -> int:
    """A port number 0-65535 (an integer or its digits), as Neutron's converter takes it."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 0 <= int(text) <= 65535:
        raise BadRequest(f"Invalid input for {key}. Reason: Invalid value for port {value}.")
    return int(text)


def create_rule(req: ApiRequest) -> Reply:
    body = schemas.unwrap(req.json, "security_group_rule")
    schemas.check(schemas.RULE_CREATE, body)
    spec = dict(body)
    for key in ("port_range_min", "port_range_max"):
        if spec.get(key) is not None:
            spec[key] = _port_value(key, spec[key])
    def work(s: Session) -> tuple[dict, set[str]]:
        group, rule = service.create_rule(s, req.ctx, req.cloud.settings, spec)
        return rule_view(group, rule), enforcement.hosts_using_groups(s, {group.id})

    view, hosts = req.cloud.db.run(work)
    _enforce(req, hosts)
    return Reply(201, {"security_group_rule": view})


def show_rule(req: ApiRequest, rule_id: str) -> dict:
    require(req.ctx, READ, "get_security_group_rule")
    with req.cloud.db.reader() as s:
        view = rule_view(*service.find_rule(s, req.ctx, rule_id))
    return {"security_group_rule": select_fields(view, req.query.getlist("fields"))}


def delete_rule(req: ApiRequest, rule_id: str) -> Reply:
    def work(s: Session) -> set[str]:
        group, _ = service.find_rule(s, req.ctx, rule_id)
        service.delete_rule(s, req.ctx, rule_id)
        return enforcement.hosts_using_groups(s, {group.id})

    _enforce(req, req.cloud.db.run(work))
    return Reply(204)


ROUTES = [
    ("GET", "/v2.0/security-groups", list_groups),
    ("POST", "/v2.0/security-groups", create_group),
    ("GET", "/v2.0/security-groups/{group_id}", show_group),
    ("PUT", "/v2.0/security-groups/{group_id}", update_group),
    ("DELETE", "/v2.0/security-groups/{group_id}", delete_group),
    ("GET", "/v2.0/security-group-rules", list_rules),
    ("POST", "/v2.0/security-group-rules", create_rule),
    ("GET", "/v2.0/security-group-rules/{rule_id}", show_rule),
    ("DELETE", "/v2.0/security-group-rules/{rule_id}", delete_rule),
]
