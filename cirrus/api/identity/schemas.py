"""JSON schemas of the Keystone v3 request bodies Cirrus accepts.

Validate with `cirrus.api.validation.validate(schema, redacted(body))`: the 400 message quotes
the bad value, so secrets are replaced before validation ever sees them.
"""

from __future__ import annotations

from typing import Any

from cirrus.api.validation import name as _trimmed_name

SECRET_KEYS = frozenset({"password", "original_password", "secret"})


def redacted(body: Any) -> Any:
    """A copy of `body` with every secret string replaced, so no error message can echo one."""
    if isinstance(body, dict):
        return {k: _redact_value(v) if k in SECRET_KEYS else redacted(v) for k, v in body.items()}
    if isinstance(body, list):
        return [redacted(v) for v in body]
    return body


def _redact_value(value: Any) -> Any:
    """A stand-in of the same JSON type, so validation passes or fails exactly as before."""
    if isinstance(value, dict | list):  # e.g. the "password" auth method's payload
        return redacted(value)
    if isinstance(value, str):
        return "***"
    if isinstance(value, bool) or value is None:
        return value
    return 0 if isinstance(value, int | float) else value


id_string = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[a-zA-Z0-9-_]+$"}
nullable_id = {"type": ["string", "null"], "minLength": 1, "maxLength": 64,
               "pattern": r"^[a-zA-Z0-9-_]+$"}
name = {**_trimmed_name}
project_name = {**_trimmed_name, "maxLength": 64}
description = {"type": ["string", "null"], "maxLength": 65535}
boolean = {"type": "boolean"}
options = {"type": "object"}
no_options = {"type": "object", "maxProperties": 0}  # resources with nowhere to keep any
tags = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[^,/]*$"},
    "maxItems": 80,
    "uniqueItems": True,
}
# Lengths are checked by cirrus.identity.compliance (max_password_length) on the real value:
# validation sees redacted bodies, where every password is "***".
password = {"type": ["string", "null"]}
_option_flag = {"type": ["boolean", "null"]}  # null removes the option
user_options = {
    "type": "object",
    "properties": {
        "ignore_change_password_upon_first_use": _option_flag,
        "ignore_password_expiry": _option_flag,
        "ignore_lockout_failure_attempts": _option_flag,
        "lock_password": _option_flag,
        "ignore_user_inactivity": _option_flag,
        "multi_factor_auth_enabled": _option_flag,
        "multi_factor_auth_rules": {
            "type": ["array", "null"], "maxItems": 16,
            "items": {"type": "array", "maxItems": 16, "uniqueItems": True,
                      "items": {"type": "string", "minLength": 1, "maxLength": 255}},
        },
    },
    "additionalProperties": False,
}

# ---------------------------------------------------------------- auth

_domain_ref = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
}

auth_request = {
    "type": "object",
    "properties": {
        "auth": {
            "type": "object",
            "properties": {
                "identity": {
                    "type": "object",
                    "properties": {
                        "methods": {"type": "array", "items": {"type": "string"},
                                    "minItems": 1},
                        "password": {
                            "type": "object",
                            "properties": {
                                "user": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "name": {"type": "string"},
                                        "password": {"type": "string"},
                                        "domain": _domain_ref,
                                    },
                                    "required": ["password"],
                                },
                            },
                            "required": ["user"],
                        },
                        "token": {
                            "type": "object",
                            "properties": {"id": {"type": "string"}},
                            "required": ["id"],
                        },
                    },
                    "required": ["methods"],
                },
                "scope": {
                    "anyOf": [
                        {"type": "string", "enum": ["unscoped"]},
                        {
                            "type": "object",
                            "properties": {
                                "project": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "name": {"type": "string"},
                                        "domain": _domain_ref,
                                    },
                                },
                                "domain": _domain_ref,
                                "system": {"type": "object"},
                            },
                        },
                    ],
                },
            },
            "required": ["identity"],
        },
    },
    "required": ["auth"],
}

# ---------------------------------------------------------------- domains


def _wrapped(key: str, inner: dict) -> dict:
    return {"type": "object", "properties": {key: inner}, "required": [key],
            "additionalProperties": False}


_domain_properties = {
    "name": project_name,  # Keystone: at most 64 characters
    "description": description,
    "enabled": boolean,
    "options": no_options,
    "explicit_domain_id": id_string,
}

domain_create = _wrapped("domain", {
    "type": "object", "properties": _domain_properties, "required": ["name"],
    "additionalProperties": False,
})
domain_update = _wrapped("domain", {
    "type": "object", "properties": {k: v for k, v in _domain_properties.items()
                                     if k != "explicit_domain_id"},
    "minProperties": 1, "additionalProperties": False,
})

# ---------------------------------------------------------------- projects

# Keystone keeps any other attribute of a project or user and returns it (additionalProperties).
_project_properties = {
    "name": project_name,
    "description": description,
    "domain_id": nullable_id,
    "parent_id": nullable_id,
    "enabled": boolean,
    "is_domain": boolean,  # true: a domain, seen as a project (identity.service.domain_projects)
    "tags": tags,
    "options": options,
}

project_create = _wrapped("project", {
    "type": "object", "properties": _project_properties, "required": ["name"],
    "additionalProperties": True,
})
project_update = _wrapped("project", {
    "type": "object", "properties": _project_properties, "minProperties": 1,
    "additionalProperties": True,
})

# ---------------------------------------------------------------- users

_user_properties = {
    "name": name,
    "password": password,
    "description": description,
    "email": {"type": ["string", "null"], "maxLength": 255},
    "domain_id": id_string,
    "default_project_id": nullable_id,
    "enabled": boolean,
    "options": user_options,
    "federated": {"type": "array", "maxItems": 0},
}

user_create = _wrapped("user", {
    "type": "object", "properties": _user_properties, "required": ["name"],
    "additionalProperties": True,
})
user_update = _wrapped("user", {
    "type": "object", "properties": _user_properties, "minProperties": 1,
    "additionalProperties": True,
})
password_change = _wrapped("user", {
    "type": "object",
    "properties": {"password": {"type": "string", "minLength": 1},
                   "original_password": {"type": "string"}},
    "required": ["password", "original_password"],
    "additionalProperties": False,
})

# ---------------------------------------------------------------- roles

_role_properties = {
    "name": name,
    "description": description,
    "domain_id": nullable_id,
    "options": no_options,
}

role_create = _wrapped("role", {
    "type": "object", "properties": _role_properties, "required": ["name"],
    "additionalProperties": False,
})
role_update = _wrapped("role", {
    "type": "object", "properties": {k: v for k, v in _role_properties.items()
                                     if k != "domain_id"},
    "minProperties": 1, "additionalProperties": False,
})
