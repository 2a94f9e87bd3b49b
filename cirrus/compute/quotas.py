"""Compute quotas: instances, cores, ram, key_pairs and metadata_items enforced, counted from
the records; Nova's other quota names reported and settable (see RESOURCES).

Usage is never stored: it is counted from live instances in the same transaction that adds
new ones, so a deleted or failed instance can never leave usage behind.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.db.models import Instance, KeyPair, Project, QuotaClassLimit, QuotaLimit
from cirrus.errors import BadRequest, QuotaExceeded

# Every quota Nova's os-quota-sets names, in Nova's order. Only instances, cores, ram,
# key_pairs and metadata_items are enforced; the rest are reported (and settable) so that
# clients written for Nova find the keys they expect.
RESOURCES = ("instances", "cores", "ram", "floating_ips", "fixed_ips", "metadata_items",
             "injected_files", "injected_file_content_bytes", "injected_file_path_bytes",
             "key_pairs", "security_groups", "security_group_rules", "server_groups",
             "server_group_members")
UNLIMITED = -1
MAX_LIMIT = 0x7FFFFFFF

# Nova's defaults for the quotas Settings does not carry.
_FIXED_DEFAULTS = {
    "floating_ips": 10,
    "fixed_ips": UNLIMITED,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
    "security_groups": 10,
    "security_group_rules": 20,
    "server_groups": 10,
    "server_group_members": 10,
}


def defaults(settings: Settings) -> dict[str, int]:
    values = {
        "instances": settings.quota_instances,
        "cores": settings.quota_cores,
        "ram": settings.quota_ram,
        "key_pairs": settings.quota_key_pairs,
        "metadata_items": settings.quota_metadata_items,
        **_FIXED_DEFAULTS,
    }
    return {name: values[name] for name in RESOURCES}


DEFAULT_CLASS = "default"


def class_limits(s: Session, settings: Settings, class_name: str) -> dict[str, int]:
    """A quota class's limits: the settings' defaults overlaid with the `default` class's
    rows, then with the class's own (Nova's quota classes; only `default` is applied to
    projects, as in Nova)."""
    limits = defaults(settings)
    for name in dict.fromkeys((DEFAULT_CLASS, class_name)):
        rows = s.execute(select(QuotaClassLimit.resource, QuotaClassLimit.hard_limit)
                         .where(QuotaClassLimit.class_name == name)).all()
        limits.update({row.resource: row.hard_limit for row in rows if row.resource in limits})
    return limits


def set_class_limits(s: Session, class_name: str, values: dict[str, int]) -> None:
    for resource, limit in values.items():
        if resource not in RESOURCES:
            raise BadRequest(f"Unknown quota resource {resource!r}.")
        row = s.get(QuotaClassLimit, (class_name, resource))
        if row is None:
            s.add(QuotaClassLimit(class_name=class_name, resource=resource, hard_limit=limit))
        else:
            row.hard_limit = limit
    s.flush()


def get_limits(s: Session, settings: Settings, project_id: str) -> dict[str, int]:
    limits = class_limits(s, settings, DEFAULT_CLASS)
    rows = s.execute(select(QuotaLimit.resource, QuotaLimit.hard_limit)
                     .where(QuotaLimit.project_id == project_id)).all()
    limits.update({row.resource: row.hard_limit for row in rows})
    return limits


def set_limits(s: Session, project_id: str, values: dict[str, int]) -> None:
    for resource in values:
        if resource not in RESOURCES:
            raise BadRequest(f"Unknown quota resource {resource!r}.")
    store_limits(s, project_id, values)


def delete_limits(s: Session, project_id: str) -> None:
    """Back to the defaults for compute's resources (the network quotas are Neutron's)."""
    clear_limits(s, project_id, RESOURCES)


def store_limits(s: Session, project_id: str, values: dict[str, int]) -> None:
    """Per-project overrides, of any service's resources (one QuotaLimit row each)."""
    for resource, limit in values.items():
        row = s.get(QuotaLimit, (project_id, resource))
        if row is None:
            s.add(QuotaLimit(project_id=project_id, resource=resource, hard_limit=limit))
        else:
            row.hard_limit = limit


def clear_limits(s: Session, project_id: str, resources: tuple[str, ...]) -> None:
    """Drop the project's overrides of `resources`: back to the defaults."""
    for row in s.scalars(select(QuotaLimit).where(QuotaLimit.project_id == project_id,
                                                  QuotaLimit.resource.in_(resources))):
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


def instance_overage(limits: dict[str, int], usage: dict[str, int], count: int, vcpus: int,
                     memory_mb: int, *, already_added: bool = False) -> list[tuple]:
    """(resource, requested, used, limit) for each quota that `count` more instances break.

    With `already_added`, `usage` already includes the new instances (the re-check after
    insert that catches concurrent creates).
    """
    wanted = {"instances": count, "cores": count * vcpus, "ram": count * memory_mb}
    over = []
    for resource, delta in wanted.items():
        limit = limits[resource]
        used = usage[resource] - (delta if already_added else 0)
        if limit != UNLIMITED and used + delta > limit:
            over.append((resource, delta, used, limit))
    return over


def instances_that_fit(limits: dict[str, int], usage: dict[str, int], vcpus: int,
                       memory_mb: int) -> int | None:
    """How many more instances of this size the quotas allow (None: no limit), in constant
    time: the least, over the limited resources, of floor(headroom / what one instance takes).

    Negative when the project is already over a limit (an admin lowered it with force)."""
    per_instance = {"instances": 1, "cores": vcpus, "ram": memory_mb}
    fits: int | None = None
    for resource, each in per_instance.items():
        limit = limits[resource]
        if limit == UNLIMITED or each <= 0:
            continue
        room = (limit - usage[resource]) // each
        fits = room if fits is None else min(fits, room)
    return fits


def count_that_fits(limits: dict[str, int], usage: dict[str, int], min_count: int,
                    max_count: int, vcpus: int, memory_mb: int) -> int:
    """Nova's rule for a multiple create: max_count if the quotas allow it, else as many as
    fit, but at least min_count; QuotaExceeded naming what min_count breaks otherwise."""
    fits = instances_that_fit(limits, usage, vcpus, memory_mb)
    if fits is None or fits >= max_count:
        return max_count
    if fits >= min_count:
        return fits
    raise_overage(instance_overage(limits, usage, min_count, vcpus, memory_mb))
    raise AssertionError("unreachable: min_count does not fit, so some quota is over")


def raise_overage(over: list[tuple]) -> None:
    if over:
        names = ", ".join(r for r, *_ in over)
        detail = "; ".join(f"{r}: requested {d}, but already used {u} of {lim}"
                           for r, d, u, lim in over)
        raise QuotaExceeded(f"Quota exceeded for {names}: {detail}.")


def check_injected_files(limits: dict[str, int], files: list[tuple[str, bytes]]) -> None:
    """Nova's personality limits, with its messages (403, as its OnsetFile*LimitExceeded)."""
    def over(resource: str, value: int) -> bool:
        return limits[resource] != UNLIMITED and value > limits[resource]

    if over("injected_files", len(files)):
        raise QuotaExceeded("Personality file limit exceeded")
    for path, data in files:
        if over("injected_file_path_bytes", len(path.encode())):
            raise QuotaExceeded("Personality file path exceeds maximum "
                                f"{limits['injected_file_path_bytes']}")
        if over("injected_file_content_bytes", len(data)):
            raise QuotaExceeded("Personality file content exceeds maximum "
                                f"{limits['injected_file_content_bytes']}")


def check_instances(s: Session, settings: Settings, project_id: str, count: int, vcpus: int,
                    memory_mb: int, *, already_added: bool = False,
                    limits: dict[str, int] | None = None) -> None:
    """Raise QuotaExceeded if `count` more instances of this size do not fit."""
    limits = limits if limits is not None else get_limits(s, settings, project_id)
    if all(limits[r] == UNLIMITED for r in ("instances", "cores", "ram")):
        return
    raise_overage(instance_overage(limits, get_usage(s, project_id), count, vcpus, memory_mb,
                                   already_added=already_added))


def get_usage_report(s: Session, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """In-use counts for every resource in RESOURCES (0 for those Cirrus does not track).

    key_pairs belong to users, so they are counted for `user_id` (0 without one).
    """
    usage = {name: 0 for name in RESOURCES}
    usage.update(get_usage(s, project_id, user_id))
    return usage


def check_new_limits(s: Session, project_id: str, values: dict[str, int]) -> None:
    """Raise BadRequest if a new project limit is below what the project already uses."""
    usage = get_usage(s, project_id)
    for resource, limit in values.items():
        used = usage.get(resource, 0)
        if limit != UNLIMITED and limit < used:
            raise BadRequest(f"Quota limit {limit} for {resource} must be greater than or "
                             f"equal to already used and reserved {used}.")


def check_key_pairs(s: Session, settings: Settings, project_id: str | None, user_id: str) -> None:
    """Raise QuotaExceeded if the user may not own one more key pair."""
    limit = (get_limits(s, settings, project_id)["key_pairs"] if project_id
             else class_limits(s, settings, DEFAULT_CLASS)["key_pairs"])
    used = get_usage(s, project_id or "", user_id)["key_pairs"]
    if limit != UNLIMITED and used + 1 > limit:
        raise QuotaExceeded("Quota exceeded, too many key pairs.")


def verify_project(s: Session, project_id: str) -> None:
    """BadRequest unless the project exists (Nova asks Keystone the same question)."""
    if s.get(Project, project_id) is None:
        raise BadRequest(f"Project ID {project_id} is not a valid project.")
