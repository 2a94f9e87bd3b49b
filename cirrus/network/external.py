"""The default external network of `cirrus all-in-one --virt-driver libvirt` (issue 14,
point 5): a `router:external` flat network on the physical network of the same name,
owned by the admin project, with one IPv4 subnet without DHCP. No host maps that physical
network to an interface unless an operator does (`physical_interface_mappings`), so its
bridge has no uplink and nothing leaves the machine; routers and floating IPs work on it at
once.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.config import Settings
from cirrus.context import RequestContext
from cirrus.db.models import Network, Project
from cirrus.network import networks, subnets

log = logging.getLogger(__name__)


def ensure_default_external_network(s: Session, settings: Settings) -> Network | None:
    """The external network named `all_in_one_external_network`, made if no external
    network of that name exists (an operator's, or one made before, is left as it is);
    None when the setting is empty (no default external network)."""
    name, cidr = settings.all_in_one_external_network, settings.all_in_one_external_cidr
    if not name or not cidr:
        return None
    existing = s.scalar(select(Network).where(Network.name == name,
                                              Network.external.is_(True)).limit(1))
    if existing is not None:
        return existing
    project_id = s.scalar(select(Project.id).where(Project.name == settings.admin_project)
                          .order_by(Project.id).limit(1))
    if project_id is None:
        raise RuntimeError(f"project {settings.admin_project!r} does not exist: bootstrap first")
    ctx = RequestContext.admin()
    network = networks.create_network(s, ctx, settings, {
        "name": name, "project_id": project_id, "external": True,
        "provider_network_type": "flat", "provider_physical_network": name})
    subnets.create_subnet(s, ctx, settings, {
        "network_id": network.id, "name": f"{name}-subnet", "cidr": cidr,
        "ip_version": 6 if ":" in cidr else 4, "enable_dhcp": False,
        "project_id": project_id})
    log.info("all-in-one: made the external network %s (%s, flat on physical network %s, "
             "no uplink unless mapped)", network.id, cidr, name)
    return network
