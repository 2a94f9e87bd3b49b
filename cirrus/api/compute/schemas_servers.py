"""JSON schemas for the servers API (create, update, metadata, actions)."""

from __future__ import annotations

from cirrus.api.validation import boolean, metadata, name

# Nova's db.MAX_INT: counts and sizes are bounded by it (Nova's volume_size and flavor fields
# have it as their maximum; Cirrus bounds min_count and max_count by it too, where Nova
# leaves them to the quota). A string of digits is compared with the bounds by the handler
# (common.bounded_int), as Nova's validator compares string numbers.
MAX_INT = 0x7FFFFFFF


def bounded_int(minimum: int, maximum: int = MAX_INT) -> dict:
    """An integer in minimum..maximum, as a JSON number or a string of digits."""
    return {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": minimum,
            "maximum": maximum, "maxLength": 255}


positive_int = bounded_int(1)

# 2.90's `hostname`: a host name label (Nova's parameter_types.hostname).
hostname = {"type": "string", "minLength": 2, "maxLength": 63,
            "pattern": "^[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]$"}

_network = {
    "type": "object",
    "properties": {
        "uuid": {"type": "string"},
        "port": {"type": ["string", "null"]},
        "fixed_ip": {"type": "string"},
        "tag": {"type": "string"},
    },
    "additionalProperties": False,
}

_block_device_mapping = {
    "type": "object",
    "properties": {
        "uuid": {"type": "string", "minLength": 1, "maxLength": 255},
        "source_type": {"type": "string", "enum": ["image", "volume", "snapshot", "blank"]},
        "destination_type": {"type": "string", "enum": ["local", "volume"]},
        "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$",
                       "minimum": -MAX_INT - 1, "maximum": MAX_INT, "maxLength": 255},
        "delete_on_termination": {"type": ["boolean", "string"]},
        "volume_size": bounded_int(1),
        "device_name": {"type": "string"},
        "device_type": {"type": "string"},
        "disk_bus": {"type": "string"},
        "guest_format": {"type": "string"},
        "tag": {"type": "string"},
        "volume_type": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}

server_create = {
    "type": "object",
    "properties": {
        "server": {
            "type": "object",
            "properties": {
                "name": name,
                "imageRef": {"type": "string", "maxLength": 255},
                "flavorRef": {"type": ["string", "integer"], "minLength": 1},
                "adminPass": {"type": "string"},
                "metadata": metadata,
                "networks": {
                    "oneOf": [
                        {"type": "array", "items": _network},
                        {"type": "string", "enum": ["none", "auto"]},
                    ]
                },
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
                "accessIPv4": {"type": "string", "format": "ipv4"},
                "accessIPv6": {"type": "string", "format": "ipv6"},
                "personality": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"path": {"type": "string"},
                                       "contents": {"type": "string"}},
                        "required": ["path", "contents"],
                        "additionalProperties": False,
                    },
                },
                "key_name": {"type": "string", "minLength": 1, "maxLength": 255},
                "user_data": {"type": "string", "maxLength": 65535},
                "availability_zone": {"type": "string", "minLength": 1, "maxLength": 255},
                "block_device_mapping": {"type": "array"},
                "block_device_mapping_v2": {"type": "array", "items": _block_device_mapping},
                "config_drive": boolean,
                "min_count": positive_int,
                "max_count": positive_int,
                "return_reservation_id": boolean,
                "security_groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255}},
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                },
                "description": {"type": ["string", "null"], "maxLength": 255},
                "tags": {"type": "array", "maxItems": 50,
                         "items": {"type": "string", "minLength": 1, "maxLength": 60,
                                   "pattern": "^[^,/]*$"}},
                "hostname": hostname,
                "trusted_image_certificates": {
                    "type": ["array", "null"], "minItems": 1, "maxItems": 50,
                    "uniqueItems": True,
                    "items": {"type": "string", "minLength": 1}},
                "host": {"type": "string", "minLength": 1, "maxLength": 255},
                "hypervisor_hostname": {"type": "string", "minLength": 1, "maxLength": 255},
            },
            "required": ["name", "flavorRef"],
            "additionalProperties": False,
        },
        "os:scheduler_hints": {"type": "object"},
        "OS-SCH-HNT:scheduler_hints": {"type": "object"},
    },
    "required": ["server"],
    "additionalProperties": False,
}

server_update = {
    "type": "object",
    "properties": {
        "server": {
            "type": "object",
            "properties": {
                "name": name,
                "description": {"type": ["string", "null"], "maxLength": 255},
                "accessIPv4": {"type": "string", "format": "ipv4"},
                "accessIPv6": {"type": "string", "format": "ipv6"},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
                "hostname": hostname,
            },
            "additionalProperties": False,
        }
    },
    "required": ["server"],
    "additionalProperties": False,
}

metadata_body = {
    "type": "object",
    "properties": {"metadata": metadata},
    "required": ["metadata"],
    "additionalProperties": False,
}

metadata_item = {
    "type": "object",
    "properties": {"meta": {**metadata, "minProperties": 1, "maxProperties": 1}},
    "required": ["meta"],
    "additionalProperties": False,
}

reboot = {
    "type": "object",
    "properties": {
        "reboot": {
            "type": "object",
            "properties": {"type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
            "required": ["type"],
            "additionalProperties": False,
        }
    },
    "required": ["reboot"],
    "additionalProperties": False,
}

console_output = {
    "type": "object",
    "properties": {
        "os-getConsoleOutput": {
            "type": "object",
            "properties": {
                "length": {"anyOf": [{"type": "integer", "minimum": -1},
                                     {"type": "string", "pattern": "^-?[0-9]+$",
                                      "maxLength": 255},
                                     {"type": "null"}]},
            },
            "additionalProperties": False,
        }
    },
    "required": ["os-getConsoleOutput"],
    "additionalProperties": False,
}

no_body_action = {"type": ["object", "null"]}
