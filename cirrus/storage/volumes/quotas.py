"""Block-storage quotas: volumes, gigabytes, snapshots (and each per volume type, as
`volumes_<type name>`...), per_volume_gigabytes; backups, backup_gigabytes and groups are
reported and settable (Cinder's keys) but nothing uses them yet.

Limits are the settings' defaults unless a QuotaLimit row overrides one for the project
(the mechanism compute's and networking's quotas share). Usage is never stored: it is
counted from the records in the transaction that adds new ones, after the insert, so a
failed or deleted volume never leaves usage behind. `gigabytes` counts volumes and
snapshots, as Cinder does.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cirrus.compute.quotas import clear_limits, store_limits
from cirrus.config import Settings
from cirrus.db.models import QuotaClassLimit, QuotaLimit, Volume, VolumeSnapshot, VolumeType
from cirrus.errors import BadRequest, OverLimit

UNLIMITED = -1
MAX_LIMIT = 0x7FFFFFFF
BASE = ("volumes", "gigabytes", "snapshots", "per_volume_gigabytes", "backups",
        "backup_gigabytes", "groups")
PER_TYPE = ("volumes", "gigabytes", "snapshots")


class VolumeOverQuota(OverLimit):
    """413 overLimit, as Cinder answers a quota refusal."""


def defaults(settings: Settings) -> dict[str, int]:
    return {"volumes": settings.quota_volumes, "gigabytes": settings.quota_gigabytes,
            "snapshots": settings.quota_snapshots,
            "per_volume_gigabytes": settings.quota_per_volume_gigabytes,
            "backups": 10, "backup_gigabytes": 1000, "groups": 10}


def resources(s: Session) -> list[str]:
    """Every resource name: the base ones, then three per volume type."""
    names = list(BASE)
    for type_name in s.scalars(select(VolumeType.name).order_by(VolumeType.name)):
        names.extend(f"{r}_{type_name}" for r in PER_TYPE)
    return names


DEFAULT_CLASS = "default"


def class_limits(s: Session, settings: Settings, class_name: str) -> dict[str, int]:
    """A quota class's limits (os-quota-class-sets): the settings' defaults, overlaid with
    the `default` class's rows (which change every project's defaults, as in Cinder), then
    the class's own. Rows of other services' resources are not looked at."""
    names = resources(s)
    limits = {name: UNLIMITED for name in names}
    limits.update(defaults(settings))
    for name in dict.fromkeys((DEFAULT_CLASS, class_name)):
        rows = s.execute(select(QuotaClassLimit.resource, QuotaClassLimit.hard_limit).where(
            QuotaClassLimit.class_name == name, QuotaClassLimit.resource.in_(names))).all()
        limits.update({row.resource: row.hard_limit for row in rows})
    return limits


def set_class_limits(s: Session, class_name: str, values: dict[str, int]) -> None:
    known = set(resources(s))
    for resource, limit in values.items():
        if resource not in known:
            raise BadRequest(f"Bad key(s) in quota class set: {resource}")
        row = s.get(QuotaClassLimit, (class_name, resource))
        if row is None:
            s.add(QuotaClassLimit(class_name=class_name, resource=resource, hard_limit=limit))
        else:
            row.hard_limit = limit
    s.flush()


def get_limits(s: Session, settings: Settings, project_id: str) -> dict[str, int]:
    names = resources(s)
    limits = class_limits(s, settings, DEFAULT_CLASS)
    rows = s.execute(select(QuotaLimit.resource, QuotaLimit.hard_limit).where(
        QuotaLimit.project_id == project_id, QuotaLimit.resource.in_(names))).all()
    limits.update({row.resource: row.hard_limit for row in rows})
    return limits


def default_limits(s: Session, settings: Settings) -> dict[str, int]:
    return class_limits(s, settings, DEFAULT_CLASS)


def set_limits(s: Session, project_id: str, values: dict[str, int]) -> None:
    known = set(resources(s))
    for name in values:
        if name not in known:
            raise BadRequest(f"Bad key(s) in quota set: {name}")
    store_limits(s, project_id, values)


def delete_limits(s: Session, project_id: str) -> None:
    clear_limits(s, project_id, tuple(resources(s)))


def usage(s: Session, project_id: str) -> dict[str, int]:
    """In use per resource (per type too), from the live records."""
    used = {name: 0 for name in resources(s)}
    type_names: dict[str | None, str] = {
        row.id: row.name for row in s.execute(select(VolumeType.id, VolumeType.name))}
    for type_id, count, gigabytes in s.execute(
            select(Volume.volume_type_id, func.count(), func.coalesce(func.sum(Volume.size), 0))
            .where(Volume.project_id == project_id, Volume.deleted.is_(False))
            .group_by(Volume.volume_type_id)):
        used["volumes"] += int(count)
        used["gigabytes"] += int(gigabytes)
        vol_type = type_names.get(type_id)
        if vol_type is not None:
            used[f"volumes_{vol_type}"] += int(count)
            used[f"gigabytes_{vol_type}"] += int(gigabytes)
    for snap_type_id, count, gigabytes in s.execute(
            select(VolumeSnapshot.volume_type_id, func.count(),
                   func.coalesce(func.sum(VolumeSnapshot.size), 0))
            .where(VolumeSnapshot.project_id == project_id, VolumeSnapshot.deleted.is_(False))
            .group_by(VolumeSnapshot.volume_type_id)):
        used["snapshots"] += int(count)
        used["gigabytes"] += int(gigabytes)
        snap_type = type_names.get(snap_type_id)
        if snap_type is not None:
            used[f"snapshots_{snap_type}"] += int(count)
            used[f"gigabytes_{snap_type}"] += int(gigabytes)
    return used


def check(s: Session, settings: Settings, project_id: str, type_name: str, *,
          volumes: int = 0, snapshots: int = 0, gigabytes: int = 0,
          size: int | None = None, pending: bool = False) -> None:
    """VolumeOverQuota if the records just added (already in the count) go over a limit,
    or with `pending`, if that much more would (an extend, whose size changes once done).
    `size`: the volume's (new) size, for per_volume_gigabytes."""
    limits = get_limits(s, settings, project_id)
    per_volume = limits["per_volume_gigabytes"]
    if size is not None and per_volume != UNLIMITED and size > per_volume:
        raise VolumeOverQuota(f"Requested volume size {size}G is larger than maximum "
                              f"allowed limit {per_volume}G.")
    used = usage(s, project_id)
    wanted = {"volumes": volumes, "snapshots": snapshots, "gigabytes": gigabytes}
    for resource, delta in wanted.items():
        if delta <= 0:
            continue
        for name in (resource, f"{resource}_{type_name}"):
            limit = limits.get(name, UNLIMITED)
            total = used.get(name, 0) + (delta if pending else 0)
            if limit != UNLIMITED and total > limit:
                if resource == "gigabytes":
                    raise VolumeOverQuota(
                        f"Requested volume or snapshot exceeds allowed {name} quota. "
                        f"Requested {delta}G, quota is {limit}G and "
                        f"{total - delta}G has been consumed.")
                raise VolumeOverQuota(f"Maximum number of {resource} allowed ({limit}) "
                                      f"exceeded for quota '{name}'.")
