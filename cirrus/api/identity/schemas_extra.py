"""JSON schemas of the Keystone v3 bodies for credentials, EC2 credentials, OAuth1 consumers,
policies and domain configuration. Validate with `validate(schema, redacted(body))`: secrets
(a blob, a password) are replaced first, so no 400 can echo one."""

from __future__ import annotations

from typing import Any

from cirrus.api.identity.schemas import id_string, nullable_id
from cirrus.errors import BadRequest

SECRET_KEYS = frozenset({"blob", "secret", "password"})


def _stand_in(value: Any) -> Any:
    """Of the same JSON type (and length, for a string), so validation fails just the same."""
    if isinstance(value, str):
        return "*" * len(value)
    if isinstance(value, list):
        return []
    return {} if isinstance(value, dict) else value


def redacted(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _stand_in(v) if k in SECRET_KEYS else redacted(v) for k, v in body.items()}
    if isinstance(body, list):
        return [redacted(v) for v in body]
    return body


_type = {"type": "string", "minLength": 1, "maxLength": 255}
# A sealed blob must fit a TEXT column (64 KiB on MariaDB): 32 KiB of UTF-8 at most (checked
# in bytes by fits() too, since a character may take 4).
BLOB_BYTES = 32768
TEXT_BYTES = 65535
_blob = {"type": "string", "minLength": 1, "maxLength": BLOB_BYTES}

credential_create = {
    "type": "object", "required": ["credential"], "additionalProperties": False,
    "properties": {"credential": {
        "type": "object", "required": ["blob", "type", "user_id"],
        "properties": {"blob": _blob, "type": _type, "user_id": id_string,
                       "project_id": nullable_id},
    }},
}
credential_update = {
    "type": "object", "required": ["credential"], "additionalProperties": False,
    "properties": {"credential": {
        "type": "object", "minProperties": 1,
        "properties": {"blob": _blob, "type": _type, "user_id": id_string,
                       "project_id": nullable_id},
    }},
}
ec2_create = {
    "type": "object", "required": ["tenant_id"],
    "properties": {"tenant_id": id_string, "trust_id": {"type": ["string", "null"]}},
}
_description = {"type": ["string", "null"], "maxLength": TEXT_BYTES}
consumer_create = {
    "type": "object", "required": ["consumer"], "additionalProperties": False,
    "properties": {"consumer": {
        "type": "object", "properties": {"description": _description},
    }},
}
consumer_update = {
    "type": "object", "required": ["consumer"], "additionalProperties": False,
    "properties": {"consumer": {
        "type": "object", "properties": {"description": _description},
    }},
}
policy_create = {
    "type": "object", "required": ["policy"], "additionalProperties": False,
    "properties": {"policy": {
        "type": "object", "required": ["blob", "type"],
        "properties": {"blob": {**_blob, "maxLength": TEXT_BYTES}, "type": _type},
    }},
}
policy_update = {
    "type": "object", "required": ["policy"], "additionalProperties": False,
    "properties": {"policy": {
        "type": "object", "minProperties": 1,
        "properties": {"blob": {**_blob, "maxLength": TEXT_BYTES}, "type": _type},
    }},
}
_value = {"type": ["string", "integer", "number", "boolean", "null", "array"],
          "items": {"type": ["string", "integer", "number", "boolean"]}}
_group = {"type": "object", "minProperties": 1, "additionalProperties": _value}
domain_config = {
    "type": "object", "required": ["config"], "additionalProperties": False,
    "properties": {"config": {"type": "object", "minProperties": 1,
                              "additionalProperties": _group}},
}
domain_config_option = {
    "type": "object", "required": ["config"], "additionalProperties": False,
    "properties": {"config": {"type": "object", "minProperties": 1, "maxProperties": 1,
                              "additionalProperties": _value}},
}


def fits(fields: dict, name: str, limit: int) -> None:
    """400 naming `name` when its UTF-8 form is longer than `limit` bytes."""
    value = fields.get(name)
    if isinstance(value, str) and len(value.encode()) > limit:
        raise BadRequest(f"Invalid input for field/attribute {name}: longer than {limit} "
                         "bytes.")
