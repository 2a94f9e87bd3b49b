"""Availability zones: agents live in their host's zone, every other role in "internal"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.db.models import ComputeNode, Service, utcnow

from .liveness import AGENT_BINARY, service_is_up
from .records import last_update

INTERNAL_ZONE = "internal"


def service_zone(svc: Service, settings: Settings) -> str:
    """Agents live in their availability zone; every other role in the "internal" zone."""
    if svc.binary != AGENT_BINARY:
        return INTERNAL_ZONE
    return svc.availability_zone or settings.default_availability_zone


@dataclass
class Zone:
    name: str
    available: bool
    # host -> binary -> {"available", "active", "updated_at"}; enabled services only
    hosts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def schedulable_zones(s: Session, settings: Settings) -> set[str]:
    """The zones a server may ask for: those of compute nodes whose agent is enabled (up or
    not, as Nova's available zones), as the scheduler sees them."""
    rows = s.execute(select(ComputeNode.availability_zone)
                     .join(Service, (Service.host == ComputeNode.host)
                           & (Service.binary == AGENT_BINARY))
                     .where(Service.disabled.is_(False)).distinct()).all()
    return {zone or settings.default_availability_zone for (zone,) in rows}


def availability_zones(s: Session, settings: Settings) -> list[Zone]:
    """Zones with an enabled service that is up (available) first, then the others; each
    sorted by name."""
    now = utcnow()
    zones: dict[str, Zone] = {}
    for svc in s.scalars(select(Service).order_by(Service.host, Service.binary)):
        name = service_zone(svc, settings)
        zone = zones.setdefault(name, Zone(name, False))
        if svc.disabled:
            continue
        up = service_is_up(svc, settings.service_down_time, now)
        zone.available = zone.available or up
        zone.hosts.setdefault(svc.host, {})[svc.binary] = {
            "available": up, "active": True, "updated_at": last_update(svc)}
    return (sorted((z for z in zones.values() if z.available), key=lambda z: z.name)
            + sorted((z for z in zones.values() if not z.available), key=lambda z: z.name))
