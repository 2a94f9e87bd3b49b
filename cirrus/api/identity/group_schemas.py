"""Request bodies of /v3/groups (Keystone's group schema)."""

from __future__ import annotations

from cirrus.api.identity.schemas import _wrapped, description, id_string, project_name

_group_properties = {"name": project_name, "description": description, "domain_id": id_string}

# Like Keystone, any other attribute is kept and returned (additionalProperties).
group_create = _wrapped("group", {
    "type": "object", "properties": _group_properties, "required": ["name"],
})
group_update = _wrapped("group", {
    "type": "object", "properties": {**_group_properties, "domain_id": {"not": {}}},
    "minProperties": 1,
})
