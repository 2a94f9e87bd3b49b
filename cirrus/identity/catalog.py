"""The service catalog: which OpenStack services Cirrus serves, and where.

The catalog is not stored anywhere: it is a pure function of the settings (public URL and
region), so every API process derives the same one and ids stay stable across restarts.
A capability that starts serving a new API adds one row to `SERVICES`.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

from cirrus.config import Settings

# A fixed namespace so that service and endpoint ids are the same in every process.
_ID_NAMESPACE = uuid.UUID("6f1c2b0e-8f3e-4a7c-9b8e-2d1f6c3a9e10")

INTERFACES = ("public", "internal", "admin")


@dataclass(frozen=True)
class CatalogService:
    """One API Cirrus serves: its catalog type and name, and its path under the public URL."""

    type: str
    name: str
    path: str
    description: str


SERVICES: tuple[CatalogService, ...] = (
    CatalogService("identity", "keystone", "/identity", "Cirrus Identity Service (Keystone v3)"),
    CatalogService("compute", "nova", "/compute/v2.1", "Cirrus Compute Service (Nova v2.1)"),
    CatalogService("image", "glance", "/image", "Cirrus Image Service (Glance v2)"),
    CatalogService("network", "neutron", "/network", "Cirrus Network Service (Neutron v2.0)"),
)


@dataclass(frozen=True)
class Service:
    id: str
    type: str
    name: str
    description: str
    enabled: bool = True


@dataclass(frozen=True)
class Endpoint:
    id: str
    service_id: str
    service_type: str
    service_name: str
    interface: str
    region: str
    url: str
    enabled: bool = True


@dataclass(frozen=True)
class Region:
    id: str
    description: str = ""
    parent_region_id: str | None = None


@functools.lru_cache(maxsize=1024)
def _stable_id(*parts: str) -> str:
    return uuid.uuid5(_ID_NAMESPACE, ":".join(parts)).hex


def services(settings: Settings) -> list[Service]:
    del settings  # the set of services does not depend on settings (yet)
    return [Service(id=_stable_id("service", row.type), type=row.type, name=row.name,
                    description=row.description) for row in SERVICES]


def endpoints(settings: Settings) -> list[Endpoint]:
    return list(_endpoints(settings.effective_public_url, settings.region))


@functools.lru_cache(maxsize=16)
def _endpoints(base: str, region: str) -> tuple[Endpoint, ...]:
    """Every token carries the catalog: built once per (public URL, region), not per token."""
    result = []
    for row in SERVICES:
        service_id = _stable_id("service", row.type)
        for interface in INTERFACES:
            result.append(Endpoint(
                id=_stable_id("endpoint", row.type, interface, region), service_id=service_id,
                service_type=row.type, service_name=row.name, interface=interface, region=region,
                url=f"{base}{row.path}",
            ))
    return tuple(result)


def regions(settings: Settings) -> list[Region]:
    return [Region(id=settings.region)]


@functools.lru_cache(maxsize=16)
def token_catalog(base: str, region: str) -> list[dict]:
    """The catalog in a token body; the same for every token of one deployment, so built once.

    Callers serialise it and must not change it.
    """
    by_service: dict[str, list[dict]] = {}
    for ep in _endpoints(base, region):
        by_service.setdefault(ep.service_id, []).append(
            {"id": ep.id, "interface": ep.interface, "region": ep.region, "region_id": ep.region,
             "url": ep.url})
    return [{"id": svc.id, "type": svc.type, "name": svc.name,
             "endpoints": by_service.get(svc.id, [])}
            for svc in services(None)]  # type: ignore[arg-type]
