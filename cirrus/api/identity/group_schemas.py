"""Request bodies of /v3/groups (Keystone's group schema)."""

from __future__ import annotations

from cirrus.api.identity.schemas import _wrapped, description, id_string, name

_group_properties = {"name": name, "description": description, "domain_id": id_string}

group_create = _wrapped("group", {
    "type": "object", "properties": _group_properties, "required": ["name"],
    "additionalProperties": False,
})
group_update = _wrapped("group", {
    "type": "object", "properties": {k: v for k, v in _group_properties.items()
                                     if k != "domain_id"},
    "minProperties": 1, "additionalProperties": False,
})
