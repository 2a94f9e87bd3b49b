"""Request bodies of the Neutron API and their checks, with Neutron's error words.

`check` answers 400 as Neutron's API layer does: "Unrecognized attribute(s) 'x'",
"Cannot update read-only attribute x", "Failed to parse request. Required attribute 'x'
not specified", and "Invalid input for x. Reason: ..." for a bad value.
"""

from __future__ import annotations

import functools
import json

from jsonschema import Draft202012Validator

from cirrus.api.validation import boolean
from cirrus.errors import BadRequest


@functools.lru_cache(maxsize=64)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def check(schema: dict, body: object, *, readonly: tuple[str, ...] = ()) -> None:
    if not isinstance(body, dict):
        raise BadRequest("Invalid input: the resource body must be a JSON object.")
    unknown = [key for key in body if key not in schema["properties"]]
    for key in unknown:
        if key in readonly:
            raise BadRequest(f"Cannot update read-only attribute {key}")
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    for key in schema.get("required", ()):
        if key not in body:
            raise BadRequest(f"Failed to parse request. Required attribute '{key}' not specified")
    errors = sorted(_validator(json.dumps(schema, sort_keys=True)).iter_errors(body),
                    key=lambda e: [str(p) for p in e.path])
    if errors:
        err = errors[0]
        attribute = str(err.path[0]) if err.path else "body"
        raise BadRequest(f"Invalid input for {attribute}. Reason: {err.message}.")


def unwrap(body: object, resource: str) -> dict:
    """The resource object of a `{"<resource>": {...}}` body."""
    if not isinstance(body, dict) or resource not in body:
        raise BadRequest(f"Unable to find '{resource}' in request body")
    if not isinstance(body[resource], dict):
        raise BadRequest(f"Invalid input: '{resource}' must be a JSON object.")
    return body[resource]


text = {"type": "string", "maxLength": 255}
nullable_text = {"type": ["string", "null"], "maxLength": 255}
# Integers as Neutron takes them (a number or its digits), within a 32-bit column's range;
# the services check the narrower ranges (MTU, segmentation ids).
INT32_MAX = 2**31 - 1
integer = {"anyOf": [{"type": "integer", "minimum": -INT32_MAX - 1, "maximum": INT32_MAX},
                     {"type": "string", "pattern": r"^-?[0-9]{1,10}$"}]}
# Port numbers: any integer or text here; the API answers a bad one in Neutron's words
# ("Invalid value for port -16").
port_number = {"type": ["null", "integer", "string"]}
string_list = {"type": "array", "items": {"type": "string", "maxLength": 255}}
tags = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255}}
uuid = {"type": "string", "pattern": "^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$"}
# Neutron's type:non_negative (a number or its digits) and a prefix length (0-128).
non_negative = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": INT32_MAX},
                          {"type": "string", "pattern": "^[0-9]{1,9}$"}]}
prefixlen = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 128},
                       {"type": "string", "pattern": "^[0-9]{1,3}$"}]}
_OWNER = {"project_id": text, "tenant_id": text}
_READONLY = ("id", "tenant_id", "project_id", "status", "created_at", "updated_at",
             "revision_number")

# ---------------------------------------------------------------- networks

NETWORK_TYPES = ["flat", "vlan", "vxlan", "gre", "geneve", "local"]
_NETWORK = {
    "name": text,
    "description": text,
    "admin_state_up": boolean,
    "shared": boolean,
    "router:external": boolean,
    "is_default": boolean,
    "mtu": integer,
    "port_security_enabled": boolean,
    "provider:network_type": {"enum": [*NETWORK_TYPES, None]},
    "provider:physical_network": nullable_text,
    "provider:segmentation_id": {"anyOf": [{"type": "null"}, integer]},
}
NETWORK_CREATE = {"type": "object", "properties": {
    **_NETWORK, **_OWNER, "availability_zone_hints": string_list, "tags": tags}}
NETWORK_UPDATE = {"type": "object", "properties": _NETWORK}
NETWORK_READONLY = (*_READONLY, "subnets", "availability_zones", "availability_zone_hints",
                    "ipv4_address_scope", "ipv6_address_scope", "tags")

# ---------------------------------------------------------------- subnets

_POOLS = {"type": "array", "items": {
    "type": "object", "required": ["start", "end"], "additionalProperties": False,
    "properties": {"start": {"type": "string"}, "end": {"type": "string"}}}}
_ROUTES = {"type": "array", "items": {
    "type": "object", "required": ["destination", "nexthop"], "additionalProperties": False,
    "properties": {"destination": {"type": "string"}, "nexthop": {"type": "string"}}}}
_IPV6_MODE = {"enum": ["slaac", "dhcpv6-stateful", "dhcpv6-stateless", None]}
_SUBNET = {
    "name": text,
    "description": text,
    "gateway_ip": {"type": ["string", "null"]},
    "allocation_pools": _POOLS,
    "dns_nameservers": string_list,
    "host_routes": _ROUTES,
    "enable_dhcp": boolean,
}
SUBNET_CREATE = {"type": "object", "required": ["network_id", "ip_version"], "properties": {
    **_SUBNET, **_OWNER,
    "network_id": text,
    "cidr": {"type": "string"},
    "ip_version": {"enum": [4, 6, "4", "6"]},
    "ipv6_ra_mode": _IPV6_MODE,
    "ipv6_address_mode": _IPV6_MODE,
    # Subnet pools (cirrus.network.subnetpools); segments and service types do not exist
    # here: only their "none" values.
    "subnetpool_id": {"anyOf": [{"type": "null"}, uuid]},
    "use_default_subnetpool": boolean,
    "prefixlen": prefixlen,
    "segment_id": {"type": "null"},
    "service_types": {"type": "array", "maxItems": 0},
    "tags": tags,
}}
SUBNET_UPDATE = {"type": "object", "properties": _SUBNET}
SUBNET_READONLY = (*_READONLY, "network_id", "cidr", "ip_version", "ipv6_ra_mode",
                   "ipv6_address_mode", "subnetpool_id", "segment_id", "service_types", "tags")

# ---------------------------------------------------------------- subnet pools

_SUBNETPOOL = {
    "name": text,
    "description": text,
    "prefixes": {"type": "array", "items": {"type": "string", "maxLength": 64}},
    "default_prefixlen": prefixlen,
    "min_prefixlen": prefixlen,
    "max_prefixlen": prefixlen,
    "default_quota": {"anyOf": [{"type": "null"}, non_negative]},
    "is_default": boolean,
    "address_scope_id": {"type": "null"},  # address scopes do not exist here
}
SUBNETPOOL_CREATE = {"type": "object", "required": ["prefixes"], "properties": {
    **_SUBNETPOOL, **_OWNER, "shared": boolean}}
SUBNETPOOL_UPDATE = {"type": "object", "properties": _SUBNETPOOL}
SUBNETPOOL_READONLY = (*_READONLY, "ip_version", "shared", "tags")

# ---------------------------------------------------------------- ports

_FIXED_IPS = {"type": "array", "items": {
    "type": "object", "additionalProperties": False,
    "properties": {"subnet_id": {"type": "string"}, "ip_address": {"type": "string"}}}}
_PORT = {
    "name": text,
    "description": text,
    "admin_state_up": boolean,
    "mac_address": {"type": "string"},
    "fixed_ips": _FIXED_IPS,
    "device_id": text,
    "device_owner": text,
    "security_groups": string_list,
    "port_security_enabled": boolean,
    "binding:host_id": {"type": ["string", "null"], "maxLength": 255},
    "binding:vnic_type": {"enum": ["normal"]},
    # Not supported yet: only their empty values are taken.
    "binding:profile": {"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}]},
    "allowed_address_pairs": {"type": ["array", "null"], "items": {
        "type": "object", "additionalProperties": False,
        "properties": {"ip_address": {"type": "string", "maxLength": 64},
                       "mac_address": {"type": ["string", "null"]}}}},
    "extra_dhcp_opts": {"type": "array", "maxItems": 0},
    "dns_name": {"type": "string", "maxLength": 0},
}
PORT_CREATE = {"type": "object", "required": ["network_id"], "properties": {
    **_PORT, **_OWNER, "network_id": text, "tags": tags}}
PORT_UPDATE = {"type": "object", "properties": _PORT}
PORT_READONLY = (*_READONLY, "network_id", "binding:vif_type", "binding:vif_details", "tags")

# ---------------------------------------------------------------- security groups

SECURITY_GROUP_CREATE = {"type": "object", "properties": {
    "name": text, "description": text, "stateful": boolean, **_OWNER}}
SECURITY_GROUP_UPDATE = {"type": "object", "properties": {
    "name": text, "description": text, "stateful": boolean}}
SECURITY_GROUP_READONLY = (*_READONLY, "security_group_rules", "shared", "tags")
RULE_CREATE = {"type": "object", "required": ["security_group_id", "direction"], "properties": {
    "security_group_id": text,
    "direction": {"enum": ["ingress", "egress"]},
    "ethertype": {"type": "string"},
    "protocol": {"type": ["string", "integer", "null"]},
    "port_range_min": port_number,
    "port_range_max": port_number,
    "remote_ip_prefix": {"type": ["string", "null"]},
    "remote_group_id": {"type": ["string", "null"]},
    "remote_address_group_id": {"type": "null"},
    "description": text,
    **_OWNER,
}}

# ---------------------------------------------------------------- quotas

QUOTA_VALUE = {"anyOf": [{"type": "integer", "minimum": -1},
                         {"type": "string", "pattern": r"^(-1|[0-9]{1,18})$"}]}
TAGS_BODY = {"type": "object", "required": ["tags"], "properties": {"tags": tags}}


def requested_owner(body: dict) -> str | None:
    """The project a create names (project_id or the older tenant_id, which must agree)."""
    project_id, tenant_id = body.get("project_id"), body.get("tenant_id")
    if project_id and tenant_id and project_id != tenant_id:
        raise BadRequest("'project_id' and 'tenant_id' do not match")
    return project_id or tenant_id
