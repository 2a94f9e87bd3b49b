"""Per-user compute quotas (Nova's os-quota-sets?user_id=): a user's override of one of its
project's limits, never above the project's.

A user without an override has the project's limit. Setting one checks, as Nova does, that
it is at least what the user already uses and at most what the project leaves for the user
(the project's limit less what the project's other users use), unless `force`. Creating
servers checks the user's overrides as well as the project's limits.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cirrus.compute import quotas
from cirrus.config import Settings
from cirrus.db.models import Instance, KeyPair, UserQuotaLimit
from cirrus.errors import BadRequest


def overrides(s: Session, project_id: str, user_id: str) -> dict[str, int]:
    rows = s.execute(select(UserQuotaLimit.resource, UserQuotaLimit.hard_limit)
                     .where(UserQuotaLimit.project_id == project_id,
                            UserQuotaLimit.user_id == user_id)).all()
    return {row.resource: row.hard_limit for row in rows}


def get_limits(s: Session, settings: Settings, project_id: str, user_id: str) -> dict[str, int]:
    limits = quotas.get_limits(s, settings, project_id)
    limits.update(overrides(s, project_id, user_id))
    return limits


def get_usage(s: Session, project_id: str, user_id: str) -> dict[str, int]:
    """What `user_id` uses in the project: its servers' instances, cores and ram, its key
    pairs; 0 for the rest."""
    row = s.execute(
        select(func.count(Instance.id), func.coalesce(func.sum(Instance.vcpus), 0),
               func.coalesce(func.sum(Instance.memory_mb), 0))
        .where(Instance.project_id == project_id, Instance.user_id == user_id,
               Instance.deleted.is_(False))).one()
    usage = {name: 0 for name in quotas.RESOURCES}
    usage.update({"instances": int(row[0]), "cores": int(row[1]), "ram": int(row[2]),
                  "key_pairs": int(s.scalar(select(func.count(KeyPair.id))
                                            .where(KeyPair.user_id == user_id)) or 0)})
    return usage


def set_limits(s: Session, settings: Settings, project_id: str, user_id: str,
               values: dict[str, int], *, force: bool) -> None:
    project_limits = quotas.get_limits(s, settings, project_id)
    project_usage = quotas.get_usage_report(s, project_id)
    mine = get_usage(s, project_id, user_id)
    for resource, limit in values.items():
        if resource not in quotas.RESOURCES:
            raise BadRequest(f"Unknown quota resource {resource!r}.")
        if force:
            continue
        project_limit = project_limits[resource]
        if project_limit != quotas.UNLIMITED:
            others = max(0, project_usage.get(resource, 0) - mine[resource])
            maximum = project_limit - others if resource != "key_pairs" else project_limit
            if limit == quotas.UNLIMITED or limit > maximum:
                raise BadRequest(f"Quota limit {limit} for {resource} must be less than or "
                                 f"equal to {maximum}.")
        if limit != quotas.UNLIMITED and limit < mine[resource]:
            raise BadRequest(f"Quota limit {limit} for {resource} must be greater than or "
                             f"equal to already used and reserved {mine[resource]}.")
    for resource, limit in values.items():
        row = s.get(UserQuotaLimit, (project_id, user_id, resource))
        if row is None:
            s.add(UserQuotaLimit(project_id=project_id, user_id=user_id, resource=resource,
                                 hard_limit=limit))
        else:
            row.hard_limit = limit


def delete_limits(s: Session, project_id: str, user_id: str | None = None) -> None:
    """Drop the overrides of one user of the project, or of all its users."""
    query = delete(UserQuotaLimit).where(UserQuotaLimit.project_id == project_id)
    if user_id is not None:
        query = query.where(UserQuotaLimit.user_id == user_id)
    s.execute(query)


def check_instances(s: Session, project_id: str, user_id: str, count: int, vcpus: int,
                    memory_mb: int) -> None:
    """QuotaExceeded if `count` more instances break one of the user's overrides."""
    limits = overrides(s, project_id, user_id)
    if not any(r in limits for r in ("instances", "cores", "ram")):
        return
    full = {r: limits.get(r, quotas.UNLIMITED) for r in ("instances", "cores", "ram")}
    quotas.raise_overage(quotas.instance_overage(full, get_usage(s, project_id, user_id),
                                                 count, vcpus, memory_mb))
