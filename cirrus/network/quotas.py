"""Networking quotas: networks, subnets, ports, security groups and their rules, routers and
floating IPs per project.

Limits: the settings' defaults (quota_network, ...) unless a QuotaLimit row overrides one
for the project. Usage is never stored: it is counted from the records, and a create
re-counts after its own insert (`check(..., already_added=True)`) so that concurrent
creates cannot slip past the limit together, as compute quotas do.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cirrus.compute.quotas import clear_limits, store_limits
from cirrus.config import Settings
from cirrus.db.models import FloatingIP, Network, Port, QuotaLimit, Router, SecurityGroup, Subnet
from cirrus.network.errors import OverQuota

RESOURCES = ("network", "subnet", "port", "security_group", "security_group_rule", "router",
             "floatingip")
UNLIMITED = -1
MAX_LIMIT = 0x7FFFFFFF

_COUNTED: dict[str, type[Network | Subnet | Port | SecurityGroup | Router | FloatingIP]] = {
    "network": Network, "subnet": Subnet, "port": Port, "security_group": SecurityGroup,
    "router": Router, "floatingip": FloatingIP}


def defaults(settings: Settings) -> dict[str, int]:
    return {name: getattr(settings, f"quota_{name}") for name in RESOURCES}


def get_limits(s: Session, settings: Settings, project_id: str) -> dict[str, int]:
    limits = defaults(settings)
    rows = s.execute(select(QuotaLimit.resource, QuotaLimit.hard_limit).where(
        QuotaLimit.project_id == project_id, QuotaLimit.resource.in_(RESOURCES))).all()
    limits.update({row.resource: row.hard_limit for row in rows})
    return limits


def set_limits(s: Session, project_id: str, values: dict[str, int]) -> None:
    store_limits(s, project_id, values)


def delete_limits(s: Session, project_id: str) -> None:
    """Back to the defaults (only the networking resources; compute's stay)."""
    clear_limits(s, project_id, RESOURCES)


def projects_with_limits(s: Session) -> list[str]:
    return list(s.scalars(select(QuotaLimit.project_id).where(
        QuotaLimit.resource.in_(RESOURCES)).distinct().order_by(QuotaLimit.project_id)))


def usage(s: Session, project_id: str, resource: str) -> int:
    if resource == "security_group_rule":
        groups = s.scalars(select(SecurityGroup.rules).where(
            SecurityGroup.project_id == project_id))
        return sum(len(rules or []) for rules in groups)
    model = _COUNTED[resource]
    return int(s.scalar(select(func.count()).select_from(model)
                        .where(model.project_id == project_id)) or 0)


def usage_report(s: Session, project_id: str) -> dict[str, int]:
    return {name: usage(s, project_id, name) for name in RESOURCES}


def check(s: Session, settings: Settings, project_id: str, wanted: dict[str, int], *,
          already_added: bool = False) -> None:
    """OverQuota (409, Neutron's words) if `wanted` more of each resource do not fit.

    With `already_added` the new records are in the count already (the re-check after
    the insert)."""
    limits = get_limits(s, settings, project_id)
    over = []
    for resource, delta in wanted.items():
        limit = limits[resource]
        if limit == UNLIMITED or delta <= 0:
            continue
        used = usage(s, project_id, resource) - (delta if already_added else 0)
        if used + delta > limit:
            over.append(resource)
    if over:
        raise OverQuota(over)


def over_usage(s: Session, project_id: str, values: dict[str, int]) -> list[str]:
    """Resources whose new limit would be below what the project already uses."""
    return [name for name, limit in values.items()
            if limit != UNLIMITED and limit < usage(s, project_id, name)]
