"""Flavors: the sizes servers are built with, their extra specs, and who may use private ones.

A public flavor is usable by everyone; a private one by admins and by the projects given
access. To everyone else a private flavor does not exist (NotFound).
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import Flavor, FlavorProject
from cirrus.errors import BadRequest, Conflict, NotFound

MAX_INT = 0x7FFFFFFF
SORT_KEYS = ("created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id",
             "is_public", "memory_mb", "name", "root_gb", "rxtx_factor", "swap", "updated_at",
             "vcpu_weight", "vcpus")


@dataclass
class FlavorFilter:
    """What GET /flavors asks for. is_public None means public and private alike."""

    is_public: bool | None = True
    include_disabled: bool = True
    min_memory_mb: int | None = None
    min_root_gb: int | None = None
    sort_key: str = "flavorid"
    sort_dir: str = "asc"
    limit: int | None = None
    marker: str | None = None


# ---------------------------------------------------------------- reads


def _visible_to(ctx: RequestContext) -> Any:
    """The SQL condition for flavors a non-admin caller may see."""
    return or_(Flavor.is_public.is_(True),
               Flavor.id.in_(select(FlavorProject.flavor_id)
                             .where(FlavorProject.project_id == (ctx.project_id or ""))))


def get_flavor(s: Session, flavorid: str, ctx: RequestContext) -> Flavor:
    """The flavor with this flavor id, if the caller may see it; NotFound otherwise."""
    query = select(Flavor).where(Flavor.flavorid == str(flavorid))
    if not ctx.is_admin:
        query = query.where(_visible_to(ctx))
    flavor = s.scalar(query)
    if flavor is None:
        raise NotFound(f"Flavor {flavorid} could not be found.")
    return flavor


def get_flavor_for_project(s: Session, flavor_id: str, ctx: RequestContext) -> Flavor:
    """The flavor a server of the caller's project may be built with.

    `flavor_id` is a flavor id or a flavor link (its last path segment is used). Raises
    NotFound if no such flavor is visible to the caller's project (unknown, or private
    without access) and BadRequest if it is disabled.
    """
    flavorid = str(flavor_id).rstrip("/").rsplit("/", 1)[-1]
    query = select(Flavor).where(Flavor.flavorid == flavorid)
    if not ctx.is_admin:
        query = query.where(_visible_to(ctx))
    flavor = s.scalar(query)
    if flavor is None:
        raise NotFound(f"Flavor {flavorid} could not be found.")
    if flavor.disabled:
        raise BadRequest(f"Flavor {flavorid} is disabled and cannot be used.")
    return flavor


def list_flavors(s: Session, ctx: RequestContext, flt: FlavorFilter) -> list[Flavor]:
    """Flavors matching the filter, sorted, one page after `marker` (BadRequest if unknown)."""
    if flt.sort_key not in SORT_KEYS:
        raise BadRequest(f"Invalid input for query parameters sort_key. Value: {flt.sort_key}. "
                         f"It must be one of: {', '.join(SORT_KEYS)}.")
    if flt.sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid input for query parameters sort_dir. Value: {flt.sort_dir}. "
                         "It must be one of: asc, desc.")
    query = select(Flavor)
    if flt.is_public is not None:
        if flt.is_public:
            # Public flavors, and private ones the caller's project was given.
            query = query.where(_visible_to(ctx))
        else:
            query = query.where(Flavor.is_public.is_(False))
            if not ctx.is_admin:
                query = query.where(_visible_to(ctx))
    elif not ctx.is_admin:
        query = query.where(_visible_to(ctx))
    if not flt.include_disabled:
        query = query.where(Flavor.disabled.is_(False))
    if flt.min_memory_mb is not None:
        query = query.where(Flavor.memory_mb >= flt.min_memory_mb)
    if flt.min_root_gb is not None:
        query = query.where(Flavor.root_gb >= flt.min_root_gb)
    # vcpu_weight is a Nova column Cirrus does not have; it sorts like id.
    column = getattr(Flavor, flt.sort_key if flt.sort_key != "vcpu_weight" else "id")
    if flt.sort_dir == "desc":
        query = query.order_by(column.desc(), Flavor.id.desc())
    else:
        query = query.order_by(column.asc(), Flavor.id.asc())
    flavors = list(s.scalars(query))
    if flt.marker is not None:
        ids = [f.flavorid for f in flavors]
        if flt.marker not in ids:
            raise BadRequest(f"marker [{flt.marker}] not found")
        flavors = flavors[ids.index(flt.marker) + 1:]
    if flt.limit is not None:
        flavors = flavors[:flt.limit]
    return flavors


# ---------------------------------------------------------------- writes


def _whole(value: object, field: str, minimum: int) -> int:
    try:
        if not isinstance(value, (int, float, str)):
            raise TypeError(value)
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Flavor {field} must be an integer.") from None
    if isinstance(value, float) and value != number:
        raise BadRequest(f"Flavor {field} must be an integer.")
    if not minimum <= number <= MAX_INT:
        raise BadRequest(f"Flavor {field} must be between {minimum} and {MAX_INT}.")
    return number


def create_flavor(s: Session, *, name: str, vcpus: object, memory_mb: object, root_gb: object,
                  ephemeral_gb: object = 0, swap: object = 0, rxtx_factor: object = 1.0,
                  is_public: bool = True, flavorid: object = None,
                  description: str | None = None) -> Flavor:
    """Create a flavor; Conflict if its name or id is taken. A missing id becomes a UUID."""
    name = name.strip()
    if not name:
        raise BadRequest("Flavor name must be a non-empty string.")
    fid = str(uuidlib.uuid4()) if flavorid is None else str(flavorid).strip()
    if not fid:
        raise BadRequest("Flavor id must be a non-empty string.")
    try:
        factor = float(rxtx_factor)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRequest("Flavor rxtx_factor must be a number.") from None
    if not 0 < factor <= 3.40282e38:
        raise BadRequest("Flavor rxtx_factor must be greater than 0.")
    flavor = Flavor(
        flavorid=fid, name=name,
        vcpus=_whole(vcpus, "vcpus", 1), memory_mb=_whole(memory_mb, "ram", 1),
        root_gb=_whole(root_gb, "disk", 0), ephemeral_gb=_whole(ephemeral_gb, "ephemeral", 0),
        swap=_whole(swap, "swap", 0), rxtx_factor=factor, is_public=is_public,
        disabled=False, description=description, extra_specs={},
    )
    if s.scalar(select(Flavor.id).where(Flavor.name == name)) is not None:
        raise Conflict(f"Flavor with name {name} already exists.")
    if s.scalar(select(Flavor.id).where(Flavor.flavorid == fid)) is not None:
        raise Conflict(f"Flavor with ID {fid} already exists.")
    s.add(flavor)
    try:
        s.flush()
    except IntegrityError:  # a concurrent create won the race
        raise Conflict(f"Flavor with name {name} or ID {fid} already exists.") from None
    return flavor


def update_description(s: Session, flavorid: str, description: str | None,
                       ctx: RequestContext) -> Flavor:
    flavor = get_flavor(s, flavorid, ctx)
    flavor.description = description
    s.flush()
    return flavor


def delete_flavor(s: Session, flavorid: str, ctx: RequestContext) -> None:
    """Delete a flavor. Servers keep the copy of it they were built with."""
    flavor = get_flavor(s, flavorid, ctx)
    s.execute(delete(FlavorProject).where(FlavorProject.flavor_id == flavor.id))
    s.delete(flavor)
    s.flush()


# ---------------------------------------------------------------- extra specs


def set_extra_specs(s: Session, flavorid: str, specs: dict[str, object],
                    ctx: RequestContext) -> dict[str, str]:
    """Merge `specs` into the flavor's extra specs (values stored as strings)."""
    flavor = get_flavor(s, flavorid, ctx)
    for key, value in specs.items():
        if len(str(value)) > 255:
            raise BadRequest(f"extra_specs value of {key} is longer than 255 characters.")
    merged = dict(flavor.extra_specs or {})
    merged.update({key: str(value) for key, value in specs.items()})
    flavor.extra_specs = merged  # a new dict, so the JSON column sees the change
    s.flush()
    return merged


def delete_extra_spec(s: Session, flavorid: str, key: str, ctx: RequestContext) -> None:
    flavor = get_flavor(s, flavorid, ctx)
    specs = dict(flavor.extra_specs or {})
    if key not in specs:
        raise NotFound(f"Flavor {flavorid} has no extra specs with key {key}.")
    del specs[key]
    flavor.extra_specs = specs
    s.flush()


# ---------------------------------------------------------------- access to private flavors


def list_access(s: Session, flavor: Flavor) -> list[str]:
    """Project ids given access to a flavor, sorted."""
    return sorted(s.scalars(select(FlavorProject.project_id)
                            .where(FlavorProject.flavor_id == flavor.id)))


def add_access(s: Session, flavor: Flavor, project_id: str) -> None:
    if s.get(FlavorProject, (flavor.id, project_id)) is not None:
        raise Conflict(f"Flavor access already exists for flavor {flavor.flavorid} and "
                       f"project {project_id} combination.")
    s.add(FlavorProject(flavor_id=flavor.id, project_id=project_id))
    try:
        s.flush()
    except IntegrityError:  # a concurrent create won the race
        raise Conflict(f"Flavor access already exists for flavor {flavor.flavorid} and "
                       f"project {project_id} combination.") from None


def remove_access(s: Session, flavor: Flavor, project_id: str) -> None:
    row = s.get(FlavorProject, (flavor.id, project_id))
    if row is None:
        raise NotFound(f"Flavor access not found for {flavor.flavorid} / {project_id} "
                       "combination.")
    s.delete(row)
    s.flush()
