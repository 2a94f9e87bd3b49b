"""JSON schemas of the catalog's request bodies (regions, services, endpoints) and of
application credentials."""

from __future__ import annotations

from cirrus.api.identity.schemas import _wrapped, boolean, description, tags

region_id = {"type": "string", "minLength": 1, "maxLength": 255}
_nullable_region = {"type": ["string", "null"], "minLength": 1, "maxLength": 255}
_region_properties = {
    "description": description,
    "parent_region_id": _nullable_region,
}
# Keystone keeps any other attribute of a region, service or endpoint; Cirrus refuses them.
region_create = _wrapped("region", {
    "type": "object", "properties": {**_region_properties, "id": region_id},
    "additionalProperties": False,
})
region_update = _wrapped("region", {
    "type": "object", "properties": _region_properties, "minProperties": 1,
    "additionalProperties": False,
})

_service_properties = {
    "type": {"type": "string", "minLength": 1, "maxLength": 255},
    "name": {"type": ["string", "null"], "maxLength": 255},
    "description": description,
    "enabled": boolean,
}
service_create = _wrapped("service", {
    "type": "object", "properties": _service_properties, "required": ["type"],
    "additionalProperties": False,
})
service_update = _wrapped("service", {
    "type": "object", "properties": _service_properties, "minProperties": 1,
    "additionalProperties": False,
})

_endpoint_properties = {
    "interface": {"type": "string", "enum": ["public", "internal", "admin"]},
    "service_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "region_id": _nullable_region,
    "region": _nullable_region,
    "url": {"type": "string", "minLength": 1, "maxLength": 2048,
            "pattern": r"^[a-zA-Z][a-zA-Z0-9+.-]*://"},
    "enabled": boolean,
}
endpoint_create = _wrapped("endpoint", {
    "type": "object", "properties": _endpoint_properties,
    "required": ["interface", "service_id", "url"], "additionalProperties": False,
})
endpoint_update = _wrapped("endpoint", {
    "type": "object", "properties": _endpoint_properties, "minProperties": 1,
    "additionalProperties": False,
})

project_tags = {
    "type": "object", "properties": {"tags": tags}, "required": ["tags"],
    "additionalProperties": False,
}

_role_ref = {
    "type": "object",
    "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 64},
                   "name": {"type": "string", "minLength": 1, "maxLength": 255}},
    "minProperties": 1, "additionalProperties": False,
}
application_credential_create = _wrapped("application_credential", {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": description,
        "secret": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
        "expires_at": {"type": ["string", "null"], "maxLength": 64},
        "roles": {"type": "array", "items": _role_ref, "maxItems": 64},
        "unrestricted": {"type": ["boolean", "null"]},
        "access_rules": {"type": "array", "maxItems": 0},
    },
    "required": ["name"], "additionalProperties": False,
})

# OS-EP-FILTER's endpoint groups; which filter keys are allowed is checked by the service
# (identity.service.endpoint_groups), in Keystone's words.
_endpoint_group_properties = {
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": description,
    "filters": {"type": "object", "maxProperties": 8,
                "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 255}},
}
endpoint_group_create = _wrapped("endpoint_group", {
    "type": "object", "properties": _endpoint_group_properties, "required": ["name", "filters"],
    "additionalProperties": False,
})
endpoint_group_update = _wrapped("endpoint_group", {
    "type": "object", "properties": _endpoint_group_properties, "minProperties": 1,
    "additionalProperties": False,
})
