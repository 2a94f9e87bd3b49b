"""Nova's security group proxy (os-security-groups, os-security-group-rules, a server's
groups, and the addSecurityGroup/removeSecurityGroup actions), up to microversion 2.35.

From 2.36 the proxy is gone (404), as in Nova: clients use the network API. Below it, the
groups are the network service's (`network/security_groups.py`), shown in Nova's format:
only ingress rules, `ip_protocol`, `from_port`/`to_port` (-1 for "any"), and either
`ip_range.cidr` or the remote `group`'s name and project. Neutron's conflicts (the default
group, a group in use, a duplicate rule) are 400s here, as Nova answers.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from cirrus.api.compute.microversion import max_version
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.compute import security_groups as server_groups
from cirrus.db.models import SecurityGroup
from cirrus.errors import BadRequest, Conflict, NotFound
from cirrus.identity.policy import READ, WRITE, authorize
from cirrus.network import security_groups as service
from cirrus.network.errors import InUse, SecurityGroupNotFound, SecurityGroupRuleNotFound

LAST = "2.35"  # the proxy's last microversion

_TEXT = {"type": "string", "maxLength": 255}
GROUP_BODY = {
    "type": "object",
    "properties": {"security_group": {
        "type": "object",
        "properties": {"name": _TEXT, "description": _TEXT},
        "required": ["name", "description"],
        "additionalProperties": False,
    }},
    "required": ["security_group"],
    "additionalProperties": False,
}
_PORT = {"type": ["integer", "string", "null"]}
_ID = {"type": ["string", "integer", "null"], "maxLength": 255}
RULE_BODY = {
    "type": "object",
    "properties": {"security_group_rule": {
        "type": "object",
        "properties": {"parent_group_id": {"type": ["string", "integer"], "maxLength": 255},
                       "group_id": _ID,
                       "ip_protocol": {"type": ["string", "null"], "maxLength": 255},
                       "from_port": _PORT, "to_port": _PORT,
                       "cidr": {"type": ["string", "null"], "maxLength": 255}},
        "required": ["parent_group_id"],
        "additionalProperties": False,
    }},
    "required": ["security_group_rule"],
    "additionalProperties": False,
}
ACTION_BODY = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["name"],
    "additionalProperties": False,
}


def _group_id(value: object, what: str = "Security group id") -> str:
    text = str(value)
    try:
        uuid.UUID(text)
    except ValueError:
        raise BadRequest(f"{what} should be uuid: {text[:64]!r}.") from None
    return text


# ---------------------------------------------------------------- views


def _rule(req: ApiRequest, group: SecurityGroup, rule: dict,
          peers: dict[str, SecurityGroup]) -> dict[str, Any]:
    protocol = rule["protocol"]
    low, high = rule["port_range_min"], rule["port_range_max"]
    if protocol and low is None and high is None:
        low, high = (1, 65535) if protocol in ("tcp", "udp") else (-1, -1)
    view: dict[str, Any] = {"id": rule["id"], "parent_group_id": group.id,
                            "ip_protocol": protocol, "from_port": low, "to_port": high,
                            "group": {}, "ip_range": {}}
    remote = rule["remote_group_id"]
    if remote:
        peer = peers.get(remote)
        view["group"] = {"name": peer.name if peer else None,
                         "tenant_id": peer.project_id if peer else group.project_id}
        if peer is None:
            view["group"] = {"tenant_id": group.project_id}
    else:
        view["ip_range"] = {"cidr": rule["remote_ip_prefix"] or
                            ("::/0" if rule["ethertype"] == "IPv6" else "0.0.0.0/0")}
    return view


def _group(req: ApiRequest, group: SecurityGroup, peers: dict[str, SecurityGroup]) -> dict:
    return {"id": group.id, "name": group.name, "description": group.description or "",
            "tenant_id": group.project_id,
            "rules": [_rule(req, group, r, peers) for r in group.rules or []
                      if r["direction"] == "ingress"]}


def _peers(s: Any, groups: list[SecurityGroup]) -> dict[str, SecurityGroup]:
    wanted = {r["remote_group_id"] for g in groups for r in g.rules or [] if r["remote_group_id"]}
    known = {g.id: g for g in groups}
    for group_id in wanted - known.keys():
        peer = s.get(SecurityGroup, group_id)
        if peer is not None:
            known[group_id] = peer
    return known


def _neutron_to_nova(exc: Exception) -> BadRequest:
    return BadRequest(str(exc))


# ---------------------------------------------------------------- groups


def _ensure_default(req: ApiRequest) -> None:
    project_id = req.ctx.project_id
    if not project_id:
        return
    with req.cloud.db.reader() as s:
        if service.has_default_group(s, project_id):
            return
    req.cloud.db.run(lambda s: service.ensure_default_group(s, project_id))


@max_version(LAST)
def list_groups(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-security-groups:get")
    _ensure_default(req)
    everyone = req.ctx.is_admin and req.query.get("all_tenants", "0") not in ("0", "false", "False")
    with req.cloud.db.reader() as s:
        groups = service.list_groups(s, req.ctx)
        if not everyone:
            groups = [g for g in groups if g.project_id == req.ctx.project_id]
        peers = _peers(s, groups)
        return {"security_groups": [_group(req, g, peers) for g in groups]}


@max_version(LAST)
def create_group(req: ApiRequest) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:os-security-groups:create")
    validate(GROUP_BODY, req.json)
    body = req.json["security_group"]

    def work(s: Any) -> dict:
        try:
            group = service.create_group(s, req.ctx, req.cloud.settings, name=body["name"],
                                         description=body["description"])
        except Conflict as exc:
            raise _neutron_to_nova(exc) from None
        return _group(req, group, {})

    return {"security_group": req.cloud.db.run(work)}


@max_version(LAST)
def show_group(req: ApiRequest, group_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-security-groups:show")
    _group_id(group_id)
    with req.cloud.db.reader() as s:
        try:
            group = service.get_group(s, req.ctx, group_id)
        except SecurityGroupNotFound:
            raise NotFound(f"Security group {group_id} not found.") from None
        return {"security_group": _group(req, group, _peers(s, [group]))}


@max_version(LAST)
def update_group(req: ApiRequest, group_id: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:os-security-groups:update")
    _group_id(group_id)
    validate(GROUP_BODY, req.json)
    body = req.json["security_group"]

    def work(s: Any) -> dict:
        try:
            group = service.update_group(s, req.ctx, group_id, dict(body))
        except SecurityGroupNotFound:
            raise NotFound(f"Security group {group_id} not found.") from None
        except (InUse, Conflict) as exc:
            raise _neutron_to_nova(exc) from None
        return _group(req, group, _peers(s, [group]))

    return {"security_group": req.cloud.db.run(work)}


@max_version(LAST)
def delete_group(req: ApiRequest, group_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-security-groups:delete")
    _group_id(group_id)

    def work(s: Any) -> None:
        try:
            group = service.get_group(s, req.ctx, group_id)
            if group.name == service.DEFAULT_NAME:
                raise BadRequest("Removing default security group not allowed.")
            service.delete_group(s, req.ctx, group_id)
        except SecurityGroupNotFound:
            raise NotFound(f"Security group {group_id} not found.") from None
        except (InUse, Conflict) as exc:
            raise _neutron_to_nova(exc) from None

    req.cloud.db.run(work)
    return Reply(202)


# ---------------------------------------------------------------- rules


def _ports(protocol: str | None, low: object, high: object) -> tuple[int | None, int | None]:
    """Nova's checks of a rule's protocol and ports; Neutron's port_range_min/max."""
    if low is None and high is None:
        return None, None
    if protocol is None:
        raise BadRequest("Not enough parameters to build a valid rule: ip_protocol is "
                         "required with from_port and to_port.")
    try:
        first = int(low) if low is not None else None  # type: ignore[call-overload]
        last = int(high) if high is not None else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid port range {low}:{high}: ports must be integers.") from None
    if protocol in ("tcp", "udp"):
        if first is None or last is None:
            raise BadRequest("Not enough parameters to build a valid rule: from_port and "
                             "to_port are both required for TCP and UDP.")
        if first > last:
            raise BadRequest(f"Invalid port range {first}:{last}. Former value cannot be "
                             "greater than the later.")
        if first < 1 or last > 65535:
            raise BadRequest(f"Invalid port range {first}:{last}. Valid TCP ports should be "
                             "between 1-65535.")
        return first, last
    if protocol == "icmp":
        for name, value in (("type", first), ("code", last)):
            if value is not None and not -1 <= value <= 255:
                raise BadRequest(f"Invalid port range {first}:{last}. ICMP {name} must be "
                                 "between -1 and 255.")
        first = None if first == -1 else first
        last = None if last == -1 or first is None else last
        return first, last
    raise BadRequest(f"Invalid port range {low}:{high}: ports are only for tcp, udp and icmp.")


def _protocol(value: object) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).lower()
    if text in ("tcp", "udp", "icmp"):
        return text
    if text.isdigit() and 0 <= int(text) <= 255:
        return text
    raise BadRequest(f"Invalid IP protocol {str(value)[:64]}.")


@max_version(LAST)
def create_rule(req: ApiRequest) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:os-security-group-rules:create")
    validate(RULE_BODY, req.json)
    body = req.json["security_group_rule"]
    parent = _group_id(body["parent_group_id"], "Security group id (parent_group_id)")
    remote = body.get("group_id")
    if remote is not None:
        remote = _group_id(remote, "Security group id (group_id)")
    protocol = _protocol(body.get("ip_protocol"))
    low, high = _ports(protocol, body.get("from_port"), body.get("to_port"))
    cidr = None
    if remote is None:
        cidr = body.get("cidr") or "0.0.0.0/0"
        try:  # kept as given (Nova shows it so); the network service records it
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise BadRequest(f"Invalid cidr {str(body.get('cidr'))[:64]!r}.") from None
    ethertype = "IPv6" if cidr and network.version == 6 else "IPv4"
    spec = {"security_group_id": parent, "direction": "ingress", "ethertype": ethertype,
            "protocol": protocol, "port_range_min": low, "port_range_max": high,
            "remote_ip_prefix": cidr, "remote_group_id": remote}

    def work(s: Any) -> dict:
        try:
            group, rule = service.create_rule(s, req.ctx, req.cloud.settings, spec)
        except SecurityGroupNotFound as exc:
            raise NotFound(str(exc)) from None
        except Conflict:
            raise BadRequest(f"This rule already exists in group {parent}.") from None
        return _rule(req, group, rule, _peers(s, [group]))

    return {"security_group_rule": req.cloud.db.run(work)}


@max_version(LAST)
def delete_rule(req: ApiRequest, rule_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-security-group-rules:delete")
    _group_id(rule_id, "Security group rule id")

    def work(s: Any) -> None:
        try:
            service.delete_rule(s, req.ctx, rule_id)
        except SecurityGroupRuleNotFound:
            raise NotFound(f"Security group rule {rule_id} not found.") from None

    req.cloud.db.run(work)
    return Reply(202)


# ---------------------------------------------------------------- a server's groups


@max_version(LAST)
def list_server_groups(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-security-groups:list")
    _ensure_default(req)
    with req.cloud.db.reader() as s:
        groups = server_groups.server_groups(s, req.ctx, server_id)
        peers = _peers(s, groups)
        return {"security_groups": [_group(req, g, peers) for g in groups]}


def add_security_group(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-security-groups:add")
    validate(ACTION_BODY, body["addSecurityGroup"])
    server_groups.add_group(req.cloud, req.ctx, server_id, body["addSecurityGroup"]["name"])
    return Reply(202)


def remove_security_group(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-security-groups:remove")
    validate(ACTION_BODY, body["removeSecurityGroup"])
    server_groups.remove_group(req.cloud, req.ctx, server_id,
                               body["removeSecurityGroup"]["name"])
    return Reply(202)


ROUTES = [
    ("GET", "/v2.1/os-security-groups", list_groups),
    ("POST", "/v2.1/os-security-groups", create_group),
    ("GET", "/v2.1/os-security-groups/{group_id}", show_group),
    ("PUT", "/v2.1/os-security-groups/{group_id}", update_group),
    ("DELETE", "/v2.1/os-security-groups/{group_id}", delete_group),
    ("POST", "/v2.1/os-security-group-rules", create_rule),
    ("DELETE", "/v2.1/os-security-group-rules/{rule_id}", delete_rule),
    ("GET", "/v2.1/servers/{server_id}/os-security-groups", list_server_groups),
]
