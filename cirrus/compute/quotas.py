"""Compute quotas (instances, cores, ram, key_pairs, metadata_items), counted from the records.

Usage is never stored: it is counted from live instances in the same transaction that adds
new ones, so a deleted or failed instance can never leave usage behind.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.db.models import Instance, KeyPair, QuotaLimit
from cirrus.errors import QuotaExceeded

RESOURCES = ("instances", "cores", "ram", "key_pairs", "metadata_items")
UNLIMITED = -1


def defaults(settings: Settings) -> dict[str, int]:
    return {
        "instances": settings.quota_instances,
        "cores": settings.quota_cores,
        "ram": settings.quota_ram,
        "key_pairs": settings.quota_key_pairs,
        "metadata_items": settings.quota_metadata_items,
    }


def get_limits(s: Session, settings: Settings, project_id: str) -> dict[str, int]:
    limits = defaults(settings)
    rows = s.execute(select(QuotaLimit.resource, QuotaLimit.hard_limit)
                     .where(QuotaLimit.project_id == project_id)).all()
    limits.update({row.resource: row.hard_limit for row in rows})
    return limits


def set_limits(s: Session, project_id: str, values: dict[str, int]) -> None:
    for resource, limit in values.items():
        row = s.get(QuotaLimit, (project_id, resource))
        if row is None:
            s.add(QuotaLimit(project_id=project_id, resource=resource, hard_limit=limit))
        else:
            row.hard_limit = limit


def delete_limits(s: Session, project_id: str) -> None:
    for row in s.scalars(select(QuotaLimit).where(QuotaLimit.project_id == project_id)):
        s.delete(row)


def get_usage(s: Session, project_id: str, user_id: str | None = None) -> dict[str, int]:
    row = s.execute(
        select(func.count(Instance.id), func.coalesce(func.sum(Instance.vcpus), 0),
               func.coalesce(func.sum(Instance.memory_mb), 0))
        .where(Instance.project_id == project_id, Instance.deleted.is_(False))
    ).one()
    usage = {"instances": int(row[0]), "cores": int(row[1]), "ram": int(row[2])}
    if user_id is not None:
        usage["key_pairs"] = int(s.scalar(select(func.count(KeyPair.id))
                                          .where(KeyPair.user_id == user_id)) or 0)
    return usage


def check_instances(s: Session, settings: Settings, project_id: str, count: int, vcpus: int,
                    memory_mb: int, *, already_added: bool = False) -> None:
    """Raise QuotaExceeded if `count` more instances of this size do not fit.

    With `already_added`, the new instances are in the session already (the re-check after
    insert that catches concurrent creates), so usage includes them.
    """
    limits = get_limits(s, settings, project_id)
    usage = get_usage(s, project_id)
    wanted = {"instances": count, "cores": count * vcpus, "ram": count * memory_mb}
    over = []
    for resource, delta in wanted.items():
        limit = limits[resource]
        used = usage[resource] - (delta if already_added else 0)
        if limit != UNLIMITED and used + delta > limit:
            over.append((resource, delta, used, limit))
    if over:
        names = ", ".join(r for r, *_ in over)
        detail = "; ".join(f"{r}: requested {d}, but already used {u} of {lim}"
                           for r, d, u, lim in over)
        raise QuotaExceeded(f"Quota exceeded for {names}: {detail}.")
