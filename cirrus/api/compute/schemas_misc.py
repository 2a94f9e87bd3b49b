"""Request-body JSON schemas of flavors, keypairs, quota sets and services (Nova's rules)."""

from __future__ import annotations

import copy
from typing import Any

from cirrus.api import validation
from cirrus.compute.quotas import MAX_LIMIT, RESOURCES

MAX_INT = 0x7FFFFFFF

# ---------------------------------------------------------------- flavors

# Strings of digits are bounded too: by their length here (int() of a long one is slow),
# by value in compute.flavors (Nova's validator compares string numbers with the maximum).
_positive = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1,
             "maximum": MAX_INT, "maxLength": 255}
_non_negative = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 0,
                 "maximum": MAX_INT, "maxLength": 255}
# Printable text: no control characters other than tab, newline and carriage return.
_description = {"type": ["string", "null"], "minLength": 0, "maxLength": 65535,
                "pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"}

flavor_create: dict[str, Any] = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {
                "name": validation.name,
                "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
                       "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
                "ram": _positive,
                "vcpus": _positive,
                "disk": _non_negative,
                "OS-FLV-EXT-DATA:ephemeral": _non_negative,
                "swap": _non_negative,
                "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
                                "exclusiveMinimum": 0, "maximum": 3.40282e38,
                                "maxLength": 255},
                "os-flavor-access:is_public": validation.boolean,
            },
            "required": ["name", "ram", "vcpus", "disk"],
            "additionalProperties": False,
        },
    },
    "required": ["flavor"],
    "additionalProperties": False,
}

flavor_create_v255 = copy.deepcopy(flavor_create)
flavor_create_v255["properties"]["flavor"]["properties"]["description"] = _description

flavor_update = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {"description": _description},
            "required": ["description"],
            "additionalProperties": False,
        },
    },
    "required": ["flavor"],
    "additionalProperties": False,
}

_spec_key = "^[a-zA-Z0-9-_:. ]{1,255}$"
_specs = {
    "type": "object",
    "patternProperties": {_spec_key: {"type": ["string", "number"], "maxLength": 255}},
    "additionalProperties": False,
}

extra_specs_create = {
    "type": "object",
    "properties": {"extra_specs": _specs},
    "required": ["extra_specs"],
    "additionalProperties": False,
}

extra_spec_update = {**copy.deepcopy(_specs), "minProperties": 1, "maxProperties": 1}

_tenant = {
    "type": "object",
    "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["tenant"],
    "additionalProperties": False,
}

add_tenant_access = {
    "type": "object",
    "properties": {"addTenantAccess": _tenant},
    "required": ["addTenantAccess"],
    "additionalProperties": False,
}

remove_tenant_access = {
    "type": "object",
    "properties": {"removeTenantAccess": _tenant},
    "required": ["removeTenantAccess"],
    "additionalProperties": False,
}

# ---------------------------------------------------------------- keypairs

_keypair_name = {"allOf": [validation.name,
                           {"type": "string", "pattern": r"^[_\- a-zA-Z0-9]+$"}]}

keypair_create: dict[str, Any] = {
    "type": "object",
    "properties": {
        "keypair": {
            "type": "object",
            "properties": {
                "name": _keypair_name,
                "public_key": {"type": "string"},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["keypair"],
    "additionalProperties": False,
}

keypair_create_v22 = copy.deepcopy(keypair_create)
keypair_create_v22["properties"]["keypair"]["properties"]["type"] = {
    "type": "string", "enum": ["ssh", "x509"]}

keypair_create_v210 = copy.deepcopy(keypair_create_v22)
keypair_create_v210["properties"]["keypair"]["properties"]["user_id"] = {"type": "string"}

# ---------------------------------------------------------------- quota sets

# A string of digits is compared with -1..MAX_LIMIT by the handler (as Nova's validator does).
_quota = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1,
          "maximum": MAX_LIMIT, "maxLength": 255}

QUOTAS_DROPPED_AT_2_36 = ("fixed_ips", "floating_ips", "security_groups", "security_group_rules")
QUOTAS_DROPPED_AT_2_57 = ("injected_files", "injected_file_content_bytes",
                          "injected_file_path_bytes")


def _quota_update(dropped: tuple[str, ...]) -> dict[str, Any]:
    properties: dict[str, Any] = {name: _quota for name in RESOURCES if name not in dropped}
    properties["force"] = validation.boolean
    return {
        "type": "object",
        "properties": {
            "quota_set": {"type": "object", "properties": properties,
                          "additionalProperties": False},
        },
        "required": ["quota_set"],
        "additionalProperties": False,
    }


quota_update = _quota_update(())
quota_update_v236 = _quota_update(QUOTAS_DROPPED_AT_2_36)
quota_update_v257 = _quota_update(QUOTAS_DROPPED_AT_2_36 + QUOTAS_DROPPED_AT_2_57)

# ---------------------------------------------------------------- services

_host = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9-._]*$"}
_reason = {"type": "string", "minLength": 1, "maxLength": 255}

service_action: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host": _host,
        "binary": {"type": "string", "minLength": 1, "maxLength": 255},
        "disabled_reason": _reason,
    },
    "required": ["host", "binary"],
    "additionalProperties": False,
}

service_action_v211 = copy.deepcopy(service_action)
service_action_v211["properties"]["forced_down"] = validation.boolean

service_update_v253 = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["enabled", "disabled"]},
        "disabled_reason": _reason,
        "forced_down": validation.boolean,
    },
    "additionalProperties": False,
}
