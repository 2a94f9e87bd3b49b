"""Request bodies of routers and floating IPs (Neutron's router, extraroute, ext-gw-mode),
checked by cirrus.api.network.schemas.check in Neutron's words."""

from __future__ import annotations

from cirrus.api.network.schemas import _OWNER, _READONLY, boolean, tags, text

_FIXED_IPS = {"type": "array", "items": {
    "type": "object", "additionalProperties": False,
    "properties": {"subnet_id": {"type": "string"}, "ip_address": {"type": "string"}}}}
GATEWAY_INFO = {"anyOf": [{"type": "null"}, {
    "type": "object", "additionalProperties": False,
    "properties": {"network_id": {"type": ["string", "null"], "maxLength": 255},
                   "enable_snat": boolean, "external_fixed_ips": _FIXED_IPS}}]}
ROUTES = {"anyOf": [{"type": "null"}, {"type": "array", "items": {
    "type": "object", "required": ["destination", "nexthop"], "additionalProperties": False,
    "properties": {"destination": {"type": "string", "maxLength": 64},
                   "nexthop": {"type": "string", "maxLength": 64}}}}]}
# No DVR, HA or availability zones: only their "off" values are taken.
_ROUTER = {
    "name": text,
    "description": text,
    "admin_state_up": boolean,
    "external_gateway_info": GATEWAY_INFO,
    "distributed": {"enum": [False, "false", "False"]},
    "ha": {"enum": [False, "false", "False"]},
}
ROUTER_CREATE = {"type": "object", "properties": {
    **_ROUTER, **_OWNER, "tags": tags, "availability_zone_hints": {"type": "array", "maxItems": 0}}}
ROUTER_UPDATE = {"type": "object", "properties": {**_ROUTER, "routes": ROUTES}}
ROUTER_READONLY = (*_READONLY, "tags", "availability_zone_hints", "availability_zones",
                   "flavor_id")
INTERFACE = {"type": "object", "properties": {
    "subnet_id": {"type": ["string", "null"], "maxLength": 255},
    "port_id": {"type": ["string", "null"], "maxLength": 255}}}

_ADDRESS = {"type": ["string", "null"], "maxLength": 64}
FLOATINGIP_CREATE = {"type": "object", "required": ["floating_network_id"], "properties": {
    "floating_network_id": text,
    "floating_ip_address": _ADDRESS,
    "subnet_id": {"type": ["string", "null"], "maxLength": 255},
    "port_id": {"type": ["string", "null"], "maxLength": 255},
    "fixed_ip_address": _ADDRESS,
    "description": text,
    "tags": tags,
    **_OWNER,
}}
FLOATINGIP_UPDATE = {"type": "object", "properties": {
    "port_id": {"type": ["string", "null"], "maxLength": 255},
    "fixed_ip_address": _ADDRESS,
    "description": text,
}}
FLOATINGIP_READONLY = (*_READONLY, "floating_network_id", "floating_ip_address", "router_id",
                       "tags", "subnet_id")
