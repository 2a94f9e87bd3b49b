"""The service catalog's defaults: which OpenStack services Cirrus serves, and where.

The catalog lives in the database (regions, services, endpoints: administrators change it
through /v3/regions, /v3/services and /v3/endpoints; cirrus.identity.service.catalog_admin).
Bootstrap writes these defaults into an empty catalog, with ids derived from the service type,
interface and region so that they are the same in every deployment. A capability that starts
serving a new API adds one row to `SERVICES` (bootstrap adds that service to an existing
catalog when its type is not there yet).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

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
    CatalogService("block-storage", "cinder", "/volume/v3",
                   "Cirrus Block Storage Service (Cinder v3)"),
    CatalogService("volumev3", "cinderv3", "/volume/v3",
                   "Cirrus Block Storage Service (Cinder v3)"),
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


def default_services() -> list[Service]:
    """The services Cirrus serves, as bootstrap first writes them to the catalog."""
    return [Service(id=_stable_id("service", row.type), type=row.type, name=row.name,
                    description=row.description) for row in SERVICES]


def default_endpoints(base: str, region: str) -> list[Endpoint]:
    """Where they are (every interface at the public URL), as bootstrap first writes them."""
    result = []
    for row in SERVICES:
        service_id = _stable_id("service", row.type)
        for interface in INTERFACES:
            result.append(Endpoint(
                id=_stable_id("endpoint", row.type, interface, region), service_id=service_id,
                service_type=row.type, service_name=row.name, interface=interface, region=region,
                url=f"{base}{row.path}",
            ))
    return result
