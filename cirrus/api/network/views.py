"""Networking records as Neutron shows them: field names, formats and admin-only fields.

Admin-only fields (provider:* on networks; binding:host_id, binding:vif_type,
binding:vif_details and binding:profile on ports) are left out for other callers, as
Neutron's policy does. Timestamps are "2024-01-01T00:00:00Z".
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from cirrus.context import RequestContext
from cirrus.db.models import IPAllocation, Network, Port, SecurityGroup, Subnet, SubnetPool
from cirrus.network.model import bridge_name


def isotime(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _standard(record: Any, project_id: str) -> dict[str, Any]:
    """The attributes every Neutron resource with standard attributes has."""
    return {
        "tenant_id": project_id,
        "project_id": project_id,
        "description": record.description,
        "created_at": isotime(record.created_at),
        "updated_at": isotime(record.updated_at or record.created_at),
        "revision_number": record.revision_number,
    }


def network_view(ctx: RequestContext, network: Network, subnet_ids: list[str]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": network.id,
        "name": network.name,
        "status": network.status,
        "admin_state_up": network.admin_state_up,
        "shared": network.shared,
        "router:external": network.external,
        "is_default": network.is_default,
        "mtu": network.mtu,
        "port_security_enabled": network.port_security_enabled,
        "subnets": subnet_ids,
        "availability_zone_hints": list(network.availability_zone_hints or []),
        "availability_zones": [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "tags": list(network.tags or []),
        **_standard(network, network.project_id),
    }
    if ctx.is_admin:
        view["provider:network_type"] = network.provider_network_type
        view["provider:physical_network"] = network.provider_physical_network
        view["provider:segmentation_id"] = network.provider_segmentation_id
    return view


def subnet_view(subnet: Subnet) -> dict[str, Any]:
    return {
        "id": subnet.id,
        "name": subnet.name,
        "network_id": subnet.network_id,
        "ip_version": subnet.ip_version,
        "cidr": subnet.cidr,
        "gateway_ip": subnet.gateway_ip,
        "allocation_pools": [dict(p) for p in subnet.allocation_pools or []],
        "dns_nameservers": list(subnet.dns_nameservers or []),
        "host_routes": [dict(r) for r in subnet.host_routes or []],
        "enable_dhcp": subnet.enable_dhcp,
        "ipv6_ra_mode": subnet.ipv6_ra_mode,
        "ipv6_address_mode": subnet.ipv6_address_mode,
        "subnetpool_id": subnet.subnetpool_id,
        "segment_id": None,
        "service_types": [],
        "tags": list(subnet.tags or []),
        **_standard(subnet, subnet.project_id),
    }


def port_view(ctx: RequestContext, port: Port, allocations: list[IPAllocation]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": port.id,
        "name": port.name,
        "network_id": port.network_id,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "status": port.status,
        "device_id": port.device_id,
        "device_owner": port.device_owner,
        "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                      for a in allocations],
        "security_groups": list(port.security_groups or []),
        "port_security_enabled": port.port_security_enabled,
        "allowed_address_pairs": [dict(p) for p in port.allowed_address_pairs or []],
        "extra_dhcp_opts": [],
        "dns_name": "",
        "binding:vnic_type": port.binding_vnic_type,
        "tags": list(port.tags or []),
        **_standard(port, port.project_id),
    }
    if ctx.is_admin:
        bound = port.binding_host_id is not None
        view["binding:host_id"] = port.binding_host_id or ""
        view["binding:vif_type"] = port.binding_vif_type
        view["binding:vif_details"] = {"bridge_name": bridge_name(port.network_id)} if bound else {}
        view["binding:profile"] = {}
    return view


def _normalized(prefix: str | None) -> str | None:
    return str(ipaddress.ip_network(prefix, strict=False)) if prefix else None


def rule_view(group: SecurityGroup, rule: dict) -> dict[str, Any]:
    created = rule.get("created_at")
    stamp = isotime(dt.datetime.fromisoformat(created)) if created else isotime(group.created_at)
    return {
        "id": rule["id"],
        "security_group_id": group.id,
        "direction": rule["direction"],
        "ethertype": rule["ethertype"],
        "protocol": rule["protocol"],
        "port_range_min": rule["port_range_min"],
        "port_range_max": rule["port_range_max"],
        "remote_ip_prefix": rule["remote_ip_prefix"],
        "normalized_cidr": _normalized(rule["remote_ip_prefix"]),
        "remote_group_id": rule["remote_group_id"],
        "remote_address_group_id": None,
        "description": rule.get("description", ""),
        "tenant_id": group.project_id,
        "project_id": group.project_id,
        "created_at": stamp,
        "updated_at": stamp,
        "revision_number": rule.get("revision_number", 0),
        "tags": [],
    }


def security_group_view(group: SecurityGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "stateful": group.stateful,
        "shared": False,
        "security_group_rules": [rule_view(group, r) for r in group.rules or []],
        "tags": [],
        **_standard(group, group.project_id),
    }


def network_keys(ctx: RequestContext) -> set[str]:
    """The attributes a caller sees on networks (what it may filter and sort on)."""
    return set(network_view(ctx, Network(), []))


def subnet_keys() -> set[str]:
    return set(subnet_view(Subnet()))


def port_keys(ctx: RequestContext) -> set[str]:
    return set(port_view(ctx, Port(), []))


def subnetpool_view(pool: SubnetPool) -> dict[str, Any]:
    return {
        "id": pool.id,
        "name": pool.name,
        "ip_version": pool.ip_version,
        "prefixes": list(pool.prefixes or []),
        "default_prefixlen": pool.default_prefixlen,
        "min_prefixlen": pool.min_prefixlen,
        "max_prefixlen": pool.max_prefixlen,
        "default_quota": pool.default_quota,
        "shared": pool.shared,
        "is_default": pool.is_default,
        "address_scope_id": None,
        "tags": list(pool.tags or []),
        **_standard(pool, pool.project_id),
    }


def subnetpool_keys() -> set[str]:
    return set(subnetpool_view(SubnetPool()))
