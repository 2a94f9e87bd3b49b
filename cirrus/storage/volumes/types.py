"""Volume types: name, public or private (with an access list), extra specs (one of them,
`volume_backend_name`, picks the backend), a QoS spec. `__DEFAULT__` always exists, as in
Cinder: a volume created without a type gets it."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import QosSpec, Volume, VolumeType, VolumeTypeProject
from cirrus.errors import BadRequest, Conflict, NotFound
from cirrus.storage.volumes.backends import backend_specs, default_backend_name

DEFAULT_TYPE_ID = "6e3b8a4e-64b3-4b2e-9a5c-0c1d2e3f4a5b"  # as migration 0016_volumes
DEFAULT_TYPE_NAME = "__DEFAULT__"
BACKEND_SPEC = "volume_backend_name"


def ensure_default_type(s: Session) -> VolumeType:
    """`__DEFAULT__`, made if missing (the migration makes it; an emptied database does not
    have it)."""
    row = s.get(VolumeType, DEFAULT_TYPE_ID) or s.scalar(
        select(VolumeType).where(VolumeType.name == DEFAULT_TYPE_NAME))
    if row is None:
        row = VolumeType(id=DEFAULT_TYPE_ID, name=DEFAULT_TYPE_NAME,
                         description="Default Volume Type", is_public=True, extra_specs={})
        s.add(row)
        s.flush()
    return row


def names(s: Session) -> dict[str, str]:
    """Every type's name by id (what a volume's view shows)."""
    return {row.id: row.name for row in s.execute(select(VolumeType.id, VolumeType.name))}


def _visible_clause(ctx: RequestContext) -> ColumnElement[bool] | None:
    if ctx.is_admin:
        return None
    shared = select(VolumeTypeProject.volume_type_id).where(
        VolumeTypeProject.project_id == (ctx.project_id or ""))
    return or_(VolumeType.is_public.is_(True), VolumeType.id.in_(shared))


def list_types(s: Session, ctx: RequestContext, *, is_public: bool | None = None,
               extra_specs: dict[str, str] | None = None) -> list[VolumeType]:
    """Types the caller may use: public ones and the private ones shared with its project;
    an admin sees every type (`is_public` filters, None: both kinds). `__DEFAULT__` is
    among them: the migration and bootstrap make it."""
    query = select(VolumeType).order_by(VolumeType.name)
    clause = _visible_clause(ctx)
    if clause is not None:
        query = query.where(clause)
    if is_public is not None and ctx.is_admin:
        query = query.where(VolumeType.is_public.is_(is_public))
    rows = list(s.scalars(query))
    if extra_specs:
        rows = [t for t in rows if all((t.extra_specs or {}).get(k) == v
                                       for k, v in extra_specs.items())]
    return rows


def get_type(s: Session, ctx: RequestContext, type_id: str) -> VolumeType:
    """By id (or by name, as Cinder's `volume_type` on a volume create); NotFound if the
    caller may not use it."""
    if type_id == "default":
        return ensure_default_type(s)
    row = s.get(VolumeType, type_id) if len(type_id) <= 36 else None
    if row is None:
        row = s.scalar(select(VolumeType).where(VolumeType.name == type_id))
    if row is None and type_id == DEFAULT_TYPE_NAME:
        row = ensure_default_type(s)
    if row is None or not _can_use(s, ctx, row):
        raise NotFound(f"Volume type {type_id} could not be found.")
    return row


def _can_use(s: Session, ctx: RequestContext, row: VolumeType) -> bool:
    if ctx.is_admin or row.is_public:
        return True
    return s.get(VolumeTypeProject, (row.id, ctx.project_id or "")) is not None


def check_backend_spec(settings: Settings, specs: dict[str, str]) -> None:
    name = specs.get(BACKEND_SPEC)
    if name is not None and name not in backend_specs(settings):
        raise BadRequest(f"Invalid input for field/attribute extra_specs/{BACKEND_SPEC}. "
                         f"No volume backend named {name!r} (configured: "
                         f"{', '.join(sorted(backend_specs(settings)))}).")


def backend_for(settings: Settings, vtype: VolumeType) -> str:
    return (vtype.extra_specs or {}).get(BACKEND_SPEC) or default_backend_name(settings)


def create_type(s: Session, settings: Settings, name: str, description: str | None,
                is_public: bool, extra_specs: dict[str, str]) -> VolumeType:
    if s.scalar(select(VolumeType.id).where(VolumeType.name == name)):
        raise Conflict(f"Volume Type {name} already exists.")
    check_backend_spec(settings, extra_specs)
    row = VolumeType(id=str(uuid.uuid4()), name=name, description=description,
                     is_public=is_public, extra_specs=dict(extra_specs))
    s.add(row)
    s.flush()
    return row


def _in_use(s: Session, type_id: str) -> bool:
    return bool(s.scalar(select(func.count()).select_from(Volume).where(
        Volume.volume_type_id == type_id, Volume.deleted.is_(False))))


def update_type(s: Session, type_id: str, *, name: str | None = None,
                description: str | None = None, is_public: bool | None = None,
                set_description: bool = False) -> VolumeType:
    row = s.get(VolumeType, type_id)
    if row is None:
        raise NotFound(f"Volume type {type_id} could not be found.")
    if row.id == DEFAULT_TYPE_ID and (name is not None or is_public is not None):
        raise BadRequest("The default volume type __DEFAULT__ cannot be renamed or made private.")
    if name is not None and name != row.name:
        if s.scalar(select(VolumeType.id).where(VolumeType.name == name)):
            raise Conflict(f"Volume Type {name} already exists.")
        row.name = name
    if set_description:
        row.description = description
    if is_public is not None:
        row.is_public = is_public
    s.flush()
    return row


def delete_type(s: Session, type_id: str) -> None:
    row = s.get(VolumeType, type_id)
    if row is None:
        raise NotFound(f"Volume type {type_id} could not be found.")
    if row.id == DEFAULT_TYPE_ID:
        raise BadRequest("The default volume type __DEFAULT__ cannot be deleted.")
    if _in_use(s, type_id):
        raise BadRequest(f"Target volume type {type_id} is still in use.")
    s.execute(delete(VolumeTypeProject).where(VolumeTypeProject.volume_type_id == type_id))
    s.delete(row)


def set_extra_specs(s: Session, settings: Settings, type_id: str,
                    specs: dict[str, str]) -> VolumeType:
    row = s.get(VolumeType, type_id, with_for_update=True)
    if row is None:
        raise NotFound(f"Volume type {type_id} could not be found.")
    if BACKEND_SPEC in specs and _in_use(s, type_id):
        raise BadRequest(f"Volume type {type_id} is in use: its {BACKEND_SPEC} cannot change.")
    check_backend_spec(settings, specs)
    row.extra_specs = {**(row.extra_specs or {}), **specs}
    s.flush()
    return row


def delete_extra_spec(s: Session, type_id: str, key: str) -> None:
    row = s.get(VolumeType, type_id, with_for_update=True)
    if row is None:
        raise NotFound(f"Volume type {type_id} could not be found.")
    specs = dict(row.extra_specs or {})
    if key not in specs:
        raise NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")
    del specs[key]
    row.extra_specs = specs


def list_access(s: Session, type_id: str) -> list[str]:
    row = s.get(VolumeType, type_id)
    if row is None:
        raise NotFound(f"Volume type {type_id} could not be found.")
    if row.is_public:
        raise NotFound(f"Volume type access for public type {type_id} is not available.")
    return list(s.scalars(select(VolumeTypeProject.project_id).where(
        VolumeTypeProject.volume_type_id == type_id).order_by(VolumeTypeProject.project_id)))


def add_access(s: Session, type_id: str, project_id: str) -> None:
    row = s.get(VolumeType, type_id)
    if row is None:
        raise NotFound(f"Volume type {type_id} could not be found.")
    if row.is_public:
        raise BadRequest("Invalid volume type: public types have no access list.")
    if s.get(VolumeTypeProject, (type_id, project_id)) is not None:
        raise Conflict(f"Volume type access for {type_id} / {project_id} combination "
                       "already exists.")
    s.add(VolumeTypeProject(volume_type_id=type_id, project_id=project_id))


def remove_access(s: Session, type_id: str, project_id: str) -> None:
    access = s.get(VolumeTypeProject, (type_id, project_id))
    if access is None:
        raise NotFound(f"Volume type access not found for {type_id} / {project_id} "
                       "combination.")
    s.delete(access)


def qos_of(s: Session, vtype: VolumeType) -> QosSpec | None:
    return s.get(QosSpec, vtype.qos_specs_id) if vtype.qos_specs_id else None
