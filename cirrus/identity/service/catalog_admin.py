"""The service catalog in the database: regions, services, endpoints; the defaults bootstrap
writes; the catalog tokens carry (cached per process, see `token_catalog`)."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import (
    CatalogEndpoint,
    CatalogRegion,
    CatalogService,
    EndpointGroup,
    ProjectEndpoint,
    ProjectEndpointGroup,
)
from cirrus.errors import BadRequest, Forbidden, NotFound
from cirrus.identity import catalog
from cirrus.identity.service.common import _conflict, _flush, new_id

if TYPE_CHECKING:
    from cirrus.db.engine import Database

log = logging.getLogger(__name__)

# Another API process sees an administrator's change in new tokens within this many seconds
# (at once in the process that made it).
CATALOG_REFRESH = 1.0
_DEFAULT = "cirrus_default"


# ---------------------------------------------------------------- defaults (bootstrap)


def ensure_default_catalog(s: Session, base: str, region: str) -> None:
    """The region and the services Cirrus serves, each at every interface of the public URL.

    A service type already in the catalog is left as it is; endpoints bootstrap made and no
    administrator changed follow the configured public URL (it may change between starts).
    """
    if s.get(CatalogRegion, region) is None:
        s.add(CatalogRegion(id=region, description="", extra={}))
    present = set(s.scalars(select(CatalogService.type)))
    for svc in catalog.default_services():
        if svc.type not in present:
            s.add(CatalogService(id=svc.id, type=svc.type, name=svc.name,
                                 description=svc.description, enabled=True, extra={}))
    s.flush()
    known = set(s.scalars(select(CatalogService.id)))
    for ep in catalog.default_endpoints(base, region):
        row = s.get(CatalogEndpoint, ep.id)
        if row is None and ep.service_id in known and ep.service_type not in present:
            s.add(CatalogEndpoint(id=ep.id, service_id=ep.service_id, interface=ep.interface,
                                  region_id=region, url=ep.url, enabled=True,
                                  extra={_DEFAULT: True}))
        elif row is not None and (row.extra or {}).get(_DEFAULT) and row.url != ep.url:
            row.url = ep.url
    s.flush()


# ---------------------------------------------------------------- regions


def get_region(s: Session, region_id: str) -> CatalogRegion:
    region = s.get(CatalogRegion, region_id)
    if region is None:
        raise NotFound(f"Could not find region: {region_id}.")
    return region


def list_regions(s: Session, parent_region_id: str | None = None) -> list[CatalogRegion]:
    query = select(CatalogRegion).order_by(CatalogRegion.id)
    if parent_region_id is not None:
        query = query.where(CatalogRegion.parent_region_id == parent_region_id)
    return list(s.scalars(query))


def _check_parent(s: Session, region_id: str, parent_id: str | None) -> None:
    if parent_id is None:
        return
    if s.get(CatalogRegion, parent_id) is None:
        raise NotFound(f"Could not find region: {parent_id}.")
    seen = {region_id}
    while parent_id is not None:
        if parent_id in seen:
            raise BadRequest(f"Invalid input for field/attribute region/parent_region_id. "
                             f"The specified parent region {parent_id} would create a circular "
                             f"region hierarchy.")
        seen.add(parent_id)
        parent = s.get(CatalogRegion, parent_id)
        parent_id = parent.parent_region_id if parent is not None else None


def create_region(s: Session, fields: dict, region_id: str | None = None) -> CatalogRegion:
    region_id = region_id or fields.get("id") or new_id()
    if len(region_id) > 255:
        raise BadRequest("Invalid input for field/attribute region/id. It is longer than 255 "
                         "characters.")
    if s.get(CatalogRegion, region_id) is not None:
        raise _conflict("region", f"Duplicate ID, {region_id}")
    _check_parent(s, region_id, fields.get("parent_region_id"))
    region = CatalogRegion(id=region_id, description=fields.get("description") or "",
                           parent_region_id=fields.get("parent_region_id"), extra={})
    s.add(region)
    _flush(s, "region", f"Duplicate ID, {region_id}")
    return region


def update_region(s: Session, region_id: str, fields: dict) -> CatalogRegion:
    region = get_region(s, region_id)
    if "parent_region_id" in fields:
        _check_parent(s, region.id, fields["parent_region_id"])
        region.parent_region_id = fields["parent_region_id"]
    if "description" in fields:
        region.description = fields["description"] or ""
    s.flush()
    return region


def delete_region(s: Session, region_id: str) -> None:
    """Delete a region and its child regions (Keystone's rule), unless any has endpoints."""
    region = get_region(s, region_id)
    tree, frontier = [region], [region.id]
    while frontier:
        children = list(s.scalars(select(CatalogRegion).where(
            CatalogRegion.parent_region_id.in_(frontier))))
        children = [c for c in children if c not in tree]
        tree.extend(children)
        frontier = [c.id for c in children]
    in_use = s.scalar(select(CatalogEndpoint.id).where(
        CatalogEndpoint.region_id.in_([r.id for r in tree])).limit(1))
    if in_use is not None:
        raise Forbidden(f"Unable to delete region {region.id} because it or its child regions "
                        f"have associated endpoints.")
    for r in reversed(tree):
        s.delete(r)
        s.flush()


# ---------------------------------------------------------------- services


def get_service(s: Session, service_id: str) -> CatalogService:
    svc = s.get(CatalogService, service_id)
    if svc is None:
        raise NotFound(f"Could not find service: {service_id}.")
    return svc


def list_services(s: Session, *, type: str | None = None,
                  name: str | None = None) -> list[CatalogService]:
    query = select(CatalogService).order_by(CatalogService.type, CatalogService.id)
    if type is not None:
        query = query.where(CatalogService.type == type)
    if name is not None:
        query = query.where(CatalogService.name == name)
    return list(s.scalars(query))


def create_service(s: Session, fields: dict) -> CatalogService:
    svc = CatalogService(id=new_id(), type=fields["type"], name=fields.get("name") or "",
                         description=fields.get("description") or "",
                         enabled=fields.get("enabled", True), extra={})
    s.add(svc)
    s.flush()
    return svc


def update_service(s: Session, service_id: str, fields: dict) -> CatalogService:
    svc = get_service(s, service_id)
    for key in ("type", "name", "enabled"):
        if key in fields:
            setattr(svc, key, fields[key])
    if "description" in fields:
        svc.description = fields["description"] or ""
    s.flush()
    return svc


def delete_service(s: Session, service_id: str) -> None:
    svc = get_service(s, service_id)
    for ep in s.scalars(select(CatalogEndpoint).where(CatalogEndpoint.service_id == svc.id)):
        s.delete(ep)
    s.delete(svc)


# ---------------------------------------------------------------- endpoints


def get_endpoint(s: Session, endpoint_id: str) -> CatalogEndpoint:
    ep = s.get(CatalogEndpoint, endpoint_id)
    if ep is None:
        raise NotFound(f"Could not find endpoint: {endpoint_id}.")
    return ep


def list_endpoints(s: Session, *, interface: str | None = None, service_id: str | None = None,
                   region_id: str | None = None) -> list[CatalogEndpoint]:
    query = select(CatalogEndpoint).order_by(CatalogEndpoint.service_id,
                                             CatalogEndpoint.interface, CatalogEndpoint.id)
    if interface is not None:
        query = query.where(CatalogEndpoint.interface == interface)
    if service_id is not None:
        query = query.where(CatalogEndpoint.service_id == service_id)
    if region_id is not None:
        query = query.where(CatalogEndpoint.region_id == region_id)
    return list(s.scalars(query))


def _endpoint_refs(s: Session, fields: dict) -> None:
    """The service and region an endpoint names must exist (Keystone: 400). The legacy
    `region` field, without `region_id`, creates the region if it does not exist."""
    if "service_id" in fields and s.get(CatalogService, fields["service_id"]) is None:
        raise BadRequest(f"Invalid input for field/attribute endpoint/service_id. "
                         f"Could not find service: {fields['service_id']}.")
    if fields.get("region_id") is None and fields.get("region") is not None:
        fields["region_id"] = fields["region"]
        if s.get(CatalogRegion, fields["region_id"]) is None:
            s.add(CatalogRegion(id=fields["region_id"], description="", extra={}))
            s.flush()
    if fields.get("region_id") is not None and s.get(CatalogRegion, fields["region_id"]) is None:
        raise BadRequest(f"Invalid input for field/attribute endpoint/region_id. "
                         f"Could not find region: {fields['region_id']}.")


def create_endpoint(s: Session, fields: dict) -> CatalogEndpoint:
    fields = dict(fields)
    _endpoint_refs(s, fields)
    ep = CatalogEndpoint(id=new_id(), service_id=fields["service_id"],
                         interface=fields["interface"], region_id=fields.get("region_id"),
                         url=fields["url"], enabled=fields.get("enabled", True), extra={})
    s.add(ep)
    _flush(s, "endpoint", ep.id)
    return ep


def update_endpoint(s: Session, endpoint_id: str, fields: dict) -> CatalogEndpoint:
    ep = get_endpoint(s, endpoint_id)
    fields = dict(fields)
    _endpoint_refs(s, fields)
    for key in ("service_id", "interface", "region_id", "url", "enabled"):
        if key in fields:
            setattr(ep, key, fields[key])
    if "url" in fields:  # an administrator's URL: bootstrap leaves it alone from now on
        ep.extra = {k: v for k, v in (ep.extra or {}).items() if k != _DEFAULT}
    s.flush()
    return ep


def delete_endpoint(s: Session, endpoint_id: str) -> None:
    s.delete(get_endpoint(s, endpoint_id))


# ---------------------------------------------------------------- OS-EP-FILTER's matching

FILTER_KEYS = ("service_id", "region_id", "interface")  # what an endpoint group filters on


def group_endpoint_ids(filters: dict, endpoints: Iterable[CatalogEndpoint]) -> set[str]:
    """The ids of the endpoints whose attributes equal every filter of an endpoint group."""
    return {ep.id for ep in endpoints
            if all(getattr(ep, key) == value for key, value in filters.items()
                   if key in FILTER_KEYS)}


def endpoints_matching(s: Session, filters: dict) -> list[CatalogEndpoint]:
    endpoints = list_endpoints(s)
    ids = group_endpoint_ids(filters, endpoints)
    return [ep for ep in endpoints if ep.id in ids]


def project_endpoint_map(s: Session) -> dict[str, frozenset[str]]:
    """Every project with an OS-EP-FILTER association: the endpoints its catalog keeps (those
    associated directly and those its endpoint groups match)."""
    result: dict[str, set[str]] = {}
    for row in s.scalars(select(ProjectEndpoint)):
        result.setdefault(row.project_id, set()).add(row.endpoint_id)
    links = list(s.scalars(select(ProjectEndpointGroup)))
    if links:
        endpoints = list(s.scalars(select(CatalogEndpoint)))
        groups = {g.id: g for g in s.scalars(select(EndpointGroup))}
        for link in links:
            group = groups.get(link.endpoint_group_id)
            if group is not None:
                result.setdefault(link.project_id, set()).update(
                    group_endpoint_ids(group.filters or {}, endpoints))
    return {project: frozenset(ids) for project, ids in result.items()}


# ---------------------------------------------------------------- the catalog in tokens


def load_token_catalog(s: Session) -> list[dict]:
    """Enabled services with their enabled endpoints, as a token body carries them."""
    services = list(s.scalars(select(CatalogService).where(CatalogService.enabled.is_(True))
                              .order_by(CatalogService.type, CatalogService.id)))
    by_service: dict[str, list[dict]] = {svc.id: [] for svc in services}
    for ep in s.scalars(select(CatalogEndpoint).where(CatalogEndpoint.enabled.is_(True))
                        .order_by(CatalogEndpoint.interface, CatalogEndpoint.id)):
        if ep.service_id in by_service:
            by_service[ep.service_id].append(
                {"id": ep.id, "interface": ep.interface, "region": ep.region_id,
                 "region_id": ep.region_id, "url": ep.url})
    return [{"id": svc.id, "type": svc.type, "name": svc.name,
             "endpoints": by_service[svc.id]} for svc in services]


@dataclass
class _Snapshot:
    """The catalog, and what OS-EP-FILTER keeps of it for each project with associations."""

    catalog: list[dict]
    by_project: dict[str, frozenset[str]]
    filtered: dict[str, list[dict]] = field(default_factory=dict)  # made on first use

    def for_project(self, project_id: str | None) -> list[dict]:
        if not project_id or project_id not in self.by_project:
            return self.catalog  # Keystone: no association, the whole catalog
        found = self.filtered.get(project_id)
        if found is None:  # services left without endpoints are left out
            keep = self.by_project[project_id]
            found = [{**svc, "endpoints": [ep for ep in svc["endpoints"] if ep["id"] in keep]}
                     for svc in self.catalog]
            found = self.filtered[project_id] = [svc for svc in found if svc["endpoints"]]
        return found


class _Cached:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: _Snapshot | None = None
        self.loaded_at = 0.0
        self.generation = 0  # bumped by every change made in this process


_CACHES: weakref.WeakKeyDictionary[Database, _Cached] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache(db: Database) -> _Cached:
    with _CACHES_LOCK:
        cached = _CACHES.get(db)
        if cached is None:
            cached = _CACHES[db] = _Cached()
        return cached


def _load(db: Database, cached: _Cached) -> _Snapshot:
    generation = cached.generation
    with db.reader() as s:
        value = _Snapshot(load_token_catalog(s), project_endpoint_map(s))
    if generation == cached.generation:  # else a change came meanwhile: read again next time
        cached.value, cached.loaded_at = value, time.monotonic()
    return value


def _refresh_in_background(db: Database, cached: _Cached) -> None:
    try:
        _load(db, cached)
    except Exception:  # the stale catalog stays; the next token tries again
        log.warning("could not read the service catalog", exc_info=True)
    finally:
        cached.lock.release()


def token_catalog(db: Database, project_id: str | None = None) -> list[dict]:
    """The catalog the tokens of this deployment carry (for a token scoped to a project with
    OS-EP-FILTER associations, only the endpoints associated with it, Keystone's rule).
    Callers serialise it and must not change it.

    Token validation is served on the event loop, so only the first call (and the first
    after a change in this process) reads the database itself; a catalog older than
    CATALOG_REFRESH seconds is still served while a thread reads it again.
    """
    cached = _cache(db)
    value = cached.value
    if value is not None:
        if (time.monotonic() - cached.loaded_at >= CATALOG_REFRESH
                and cached.lock.acquire(blocking=False)):
            threading.Thread(target=_refresh_in_background, args=(db, cached),
                             name="catalog-refresh", daemon=True).start()
        return value.for_project(project_id)
    with cached.lock:
        snapshot = cached.value if cached.value is not None else _load(db, cached)
    return snapshot.for_project(project_id)


def catalog_changed(db: Database) -> None:
    """An administrator changed the catalog: this process's next token reads it again."""
    cached = _cache(db)
    cached.generation += 1
    cached.value = None
