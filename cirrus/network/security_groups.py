"""Security groups and their rules: recorded and listed as Neutron does; the hosts enforce
them (cirrus.network.enforcement sends them, cirrus.network.dataplane.firewall applies them).

What works: every project gets a `default` group on first use, with Neutron's default
rules (ingress from the same group, egress anywhere, IPv4 and IPv6); groups and rules can be
created, listed, shown, changed and deleted; ports name their groups.

The default group's id is derived from the project id, so the primary key makes two
concurrent first uses end with one group. Rules live in their group's `rules` JSON list; a
rule change locks its group's row so concurrent changes do not lose each other's rules.
"""

from __future__ import annotations

import ipaddress
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import Port, SecurityGroup, utcnow
from cirrus.errors import Conflict
from cirrus.network import quotas
from cirrus.network.access import WRITE, new_id, owner_for_create, owns, require
from cirrus.network.errors import (
    BadAttribute,
    InUse,
    InvalidInput,
    SecurityGroupConflict,
    SecurityGroupNotFound,
    SecurityGroupRuleNotFound,
)
from cirrus.network.savepoint import read_latest, try_insert

DEFAULT_NAME = "default"
_DEFAULT_NAMESPACE = uuid.UUID("0b7c7a52-3f0e-4d49-9a43-6f3b1f6a1c2e")
PROTOCOLS = ("ah", "dccp", "egp", "esp", "gre", "hopopt", "icmp", "igmp", "ip", "ipip",
             "ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts",
             "ipv6-route", "ospf", "pgm", "rsvp", "sctp", "tcp", "udp", "udplite", "vrrp")
PORT_PROTOCOLS = ("tcp", "udp", "dccp", "sctp", "udplite", "6", "17", "33", "132", "136")
ICMP_PROTOCOLS = ("icmp", "ipv6-icmp", "icmpv6", "1", "58")
IPV6_ONLY_PROTOCOLS = ("ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt",
                       "ipv6-opts", "ipv6-route")
RULE_KEYS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
             "remote_ip_prefix", "remote_group_id")


def default_group_id(project_id: str) -> str:
    return str(uuid.uuid5(_DEFAULT_NAMESPACE, project_id))


def _rule(group_id: str | None, direction: str, ethertype: str, **extra: object) -> dict:
    rule: dict[str, object] = {"id": new_id(), "direction": direction, "ethertype": ethertype, "protocol": None,
            "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
            "remote_group_id": group_id, "description": "",
            "created_at": utcnow().isoformat(), "revision_number": 0}
    rule.update(extra)
    return rule


def _egress_rules() -> list[dict]:
    return [_rule(None, "egress", "IPv4"), _rule(None, "egress", "IPv6")]


def ensure_default_group(s: Session, project_id: str) -> SecurityGroup:
    """The project's `default` group, made on first use (race-safe: its id is fixed)."""
    group_id = default_group_id(project_id)
    group = s.get(SecurityGroup, group_id)
    if group is not None:
        return group
    group = SecurityGroup(id=group_id, project_id=project_id, name=DEFAULT_NAME,
                          description="Default security group", stateful=True,
                          rules=[_rule(group_id, "ingress", "IPv4"),
                                 _rule(group_id, "ingress", "IPv6"), *_egress_rules()])
    if try_insert(s, group):
        return group
    return read_latest(s, SecurityGroup, group_id)  # type: ignore[return-value]


def get_group(s: Session, ctx: RequestContext, group_id: str, *, lock: bool = False) -> SecurityGroup:
    group = read_latest(s, SecurityGroup, group_id) if lock else s.get(SecurityGroup, group_id)
    if group is None or not owns(ctx, group.project_id):
        raise SecurityGroupNotFound(group_id)
    return group


def has_default_group(s: Session, project_id: str) -> bool:
    return s.get(SecurityGroup, default_group_id(project_id)) is not None


def list_groups(s: Session, ctx: RequestContext) -> list[SecurityGroup]:
    """The caller's groups (every group for an admin). Callers make the default group
    first (ensure_default_group, in a write transaction)."""
    query = select(SecurityGroup).order_by(SecurityGroup.created_at, SecurityGroup.id)
    if not ctx.is_admin:
        query = query.where(SecurityGroup.project_id == ctx.project_id)
    return list(s.scalars(query))


def create_group(s: Session, ctx: RequestContext, settings: Settings, *, name: str,
                 description: str = "", stateful: bool = True,
                 project_id: str | None = None) -> SecurityGroup:
    require(ctx, WRITE, "create_security_group")
    owner = owner_for_create(ctx, project_id)
    if name == DEFAULT_NAME:
        raise Conflict("Default security group already exists.")
    ensure_default_group(s, owner)
    quotas.check(s, settings, owner, {"security_group": 1, "security_group_rule": 2})
    group = SecurityGroup(id=new_id(), project_id=owner, name=name, description=description,
                          stateful=stateful, rules=_egress_rules())
    s.add(group)
    s.flush()
    quotas.check(s, settings, owner, {"security_group": 1, "security_group_rule": 2},
                 already_added=True)
    return group


def update_group(s: Session, ctx: RequestContext, group_id: str, changes: dict) -> SecurityGroup:
    group = get_group(s, ctx, group_id, lock=True)
    require(ctx, WRITE, "update_security_group")
    if group.name == DEFAULT_NAME and changes.get("name", DEFAULT_NAME) != DEFAULT_NAME:
        raise InUse("Updating default security group not allowed.",
                    "SecurityGroupCannotUpdateDefault")
    if group.name != DEFAULT_NAME and changes.get("name") == DEFAULT_NAME:
        raise InUse("Default security group already exists.",
                    "SecurityGroupDefaultAlreadyExists")
    # Neutron: a group's statefulness is not changed while ports use it (their filters
    # would change kind under established connections).
    if "stateful" in changes and bool(changes["stateful"]) != bool(group.stateful) \
            and group_in_use(s, group):
        raise InUse(f"Security Group {group.id} in use.", "SecurityGroupInUse")
    for key in ("name", "description", "stateful"):
        if key in changes:
            setattr(group, key, changes[key])
    group.revision_number += 1
    return group


def delete_group(s: Session, ctx: RequestContext, group_id: str) -> None:
    group = get_group(s, ctx, group_id, lock=True)
    require(ctx, WRITE, "delete_security_group")
    if group.id == default_group_id(group.project_id) and not ctx.is_admin:
        raise InUse("Insufficient rights for removing default security group.",
                    "SecurityGroupCannotRemoveDefault")
    if group_in_use(s, group):
        raise InUse(f"Security Group {group.id} in use.", "SecurityGroupInUse")
    # Rules of other groups that name this one as their remote group go with it (Neutron's
    # foreign key cascades the same way).
    for other in s.scalars(select(SecurityGroup).where(SecurityGroup.project_id == group.project_id,
                                                       SecurityGroup.id != group.id)):
        kept = [r for r in other.rules or [] if r.get("remote_group_id") != group.id]
        if len(kept) != len(other.rules or []):
            other.rules = kept
            other.revision_number += 1
    s.delete(group)


def group_in_use(s: Session, group: SecurityGroup) -> bool:
    lists = s.scalars(select(Port.security_groups).where(Port.project_id == group.project_id))
    return any(group.id in (groups or []) for groups in lists)


def resolve_groups(s: Session, project_id: str, names_or_ids: list[str]) -> list[str]:
    """Group ids for a port of `project_id` from ids or names (Nova passes names)."""
    ensure_default_group(s, project_id)
    groups = list(s.scalars(select(SecurityGroup).where(SecurityGroup.project_id == project_id)))
    ids: list[str] = []
    for wanted in names_or_ids:
        matches = [g for g in groups if g.id == wanted] or [g for g in groups if g.name == wanted]
        if not matches:
            raise SecurityGroupNotFound(wanted)
        if len(matches) > 1:
            raise Conflict(f"Multiple security_group matches found for name '{wanted}', "
                           "use an ID to be more specific.")
        if matches[0].id not in ids:
            ids.append(matches[0].id)
    check_statefulness([g for g in groups if g.id in ids])
    return ids


def check_statefulness(groups: list[SecurityGroup]) -> None:
    """A port's groups are all stateful or all stateless (Neutron refuses a mix: the port's
    traffic is either tracked by conntrack or not)."""
    if len({bool(g.stateful) for g in groups}) > 1:
        raise SecurityGroupConflict("Cannot apply both stateful and stateless security groups "
                                    "on the same port at the same time")


# ---------------------------------------------------------------- rules


def _protocol(value: object) -> str | None:
    if value is None or value == "any":
        return None
    text = str(value).lower()
    if text.isdigit() and 0 <= int(text) <= 255:
        return text
    if text in PROTOCOLS:
        return text
    raise BadAttribute("protocol", f"Security group rule protocol {value} not supported. "
                       f"Only protocol values {['any', *PROTOCOLS]} and integer "
                       "representations [0 to 255] are supported")


def _check_ports(rule: dict) -> None:
    protocol, low, high = rule["protocol"], rule["port_range_min"], rule["port_range_max"]
    if low is None and high is None:
        return
    if protocol is None:
        raise InvalidInput("Must also specify protocol if port range is given.")
    if protocol in PORT_PROTOCOLS:
        # Neutron's words; both ends are needed (a single port is min == max), 0 is no port.
        if low == 0 or high == 0:
            raise InvalidInput("Invalid value for port 0.")
        if low is None or high is None or low > high:
            raise InvalidInput("For TCP/UDP protocols, port_range_min must be <= port_range_max")
        return
    if protocol in ICMP_PROTOCOLS:
        for field, value in (("type", low), ("code", high)):
            if value is not None and value > 255:
                attr = "port_range_min" if field == "type" else "port_range_max"
                raise InvalidInput(f"Invalid value for ICMP {field} ({attr}) {value}. "
                                   "It must be 0 to 255.")
        if low is None:
            raise InvalidInput(f"ICMP code (port-range-max) {high} is provided but ICMP type "
                               "(port-range-min) is missing.")
        return
    raise InvalidInput(f"Ports cannot be specified for protocol {protocol}. Ports are only "
                       f"supported for {list(PORT_PROTOCOLS[:5])} and ICMP.")


def _remote_prefix(rule: dict) -> None:
    prefix = rule["remote_ip_prefix"]
    if prefix is None:
        return
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        raise BadAttribute("remote_ip_prefix", f"'{prefix}' is not a valid IP subnet") from None
    if f"IPv{net.version}" != rule["ethertype"]:
        raise InvalidInput(f"Conflicting value ethertype {rule['ethertype']} for CIDR {prefix}")
    # Kept as given, as Neutron does; views show the network itself as `normalized_cidr`.


def build_rule(s: Session, ctx: RequestContext, spec: dict) -> dict:
    """A validated, canonical rule from a request body (Neutron's checks and words)."""
    if spec.get("remote_ip_prefix") is not None and spec.get("remote_group_id") is not None:
        raise InvalidInput("Only one of remote_ip_prefix or remote_group_id or "
                           "remote_address_group_id may be provided.")
    ethertype = next((e for e in ("IPv4", "IPv6")
                      if e.lower() == str(spec.get("ethertype", "IPv4")).lower()), None)
    if ethertype is None:
        raise BadAttribute("ethertype", f"Security group rule for ethertype "
                           f"'{spec.get('ethertype')}' not supported. Allowed values are "
                           "['IPv4', 'IPv6']")
    rule = _rule(spec.get("remote_group_id"), spec["direction"], ethertype,
                 protocol=_protocol(spec.get("protocol")),
                 port_range_min=spec.get("port_range_min"),
                 port_range_max=spec.get("port_range_max"),
                 remote_ip_prefix=spec.get("remote_ip_prefix"),
                 description=spec.get("description") or "")
    if ethertype == "IPv4" and rule["protocol"] in IPV6_ONLY_PROTOCOLS:
        raise InvalidInput(f"Invalid ethertype {ethertype} for protocol {rule['protocol']}.")
    _check_ports(rule)
    _remote_prefix(rule)
    if rule["remote_group_id"] is not None:
        get_group(s, ctx, rule["remote_group_id"])
    return rule


def create_rule(s: Session, ctx: RequestContext, settings: Settings, spec: dict) -> tuple[SecurityGroup, dict]:
    require(ctx, WRITE, "create_security_group_rule")
    group = get_group(s, ctx, spec["security_group_id"], lock=True)
    rule = build_rule(s, ctx, spec)
    for existing in group.rules or []:
        if all(existing.get(k) == rule[k] for k in RULE_KEYS):
            raise Conflict(f"Security group rule already exists. Rule id is {existing['id']}.")
    quotas.check(s, settings, group.project_id, {"security_group_rule": 1})
    group.rules = [*(group.rules or []), rule]
    group.revision_number += 1
    return group, rule


def all_rules(s: Session, ctx: RequestContext) -> list[tuple[SecurityGroup, dict]]:
    return [(group, rule) for group in list_groups(s, ctx) for rule in group.rules or []]


def find_rule(s: Session, ctx: RequestContext, rule_id: str) -> tuple[SecurityGroup, dict]:
    for group, rule in all_rules(s, ctx):
        if rule["id"] == rule_id:
            return group, rule
    raise SecurityGroupRuleNotFound(rule_id)


def delete_rule(s: Session, ctx: RequestContext, rule_id: str) -> None:
    group, _ = find_rule(s, ctx, rule_id)
    group = get_group(s, ctx, group.id, lock=True)
    require(ctx, WRITE, "delete_security_group_rule")
    remaining = [r for r in group.rules or [] if r["id"] != rule_id]
    if len(remaining) == len(group.rules or []):
        raise SecurityGroupRuleNotFound(rule_id)
    group.rules = remaining
    group.revision_number += 1
