"""JSON schemas of the metadata definition (metadefs) and task APIs: the request bodies
Cirrus validates, and the documents served at /v2/schemas/metadefs/* and /v2/schemas/task(s)
(Glance's names and shapes)."""

from __future__ import annotations

import copy

NAME_MAX = 80
PROPERTY_TYPES = ["array", "boolean", "integer", "number", "object", "string", None]
# No control characters (PostgreSQL refuses NUL in text), no blank ends for names.
_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
_NAME = {"type": "string", "minLength": 1, "maxLength": NAME_MAX,
         "pattern": r"^(?!\s)[^\x00-\x1f\x7f]*(?<!\s)$"}


def _text(max_length: int | None = None, **extra: object) -> dict:
    schema: dict = {"type": "string", "pattern": _PRINTABLE, **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema

_TIMESTAMPS = {
    "created_at": {"type": "string", "readOnly": True, "format": "date-time",
                   "description": "Date and time of creation"},
    "updated_at": {"type": "string", "readOnly": True, "format": "date-time",
                   "description": "Date and time of the last modification"},
}
_POSITIVE = {"type": "integer", "minimum": 0}

_PROPERTY_NAME = {"minLength": 1, "maxLength": 255, "pattern": _PRINTABLE}
PROPERTY_FIELDS: dict = {
    "name": {"type": "string", "maxLength": 255, "minLength": 1, "pattern": _PRINTABLE},
    "title": _text(255),
    "description": _text(),
    "operators": {"type": "array", "items": {"type": "string"}},
    "type": {"type": ["string", "null"], "enum": PROPERTY_TYPES},
    "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    "minimum": {"type": "number"},
    "maximum": {"type": "number"},
    "maxLength": _POSITIVE,
    "minLength": _POSITIVE,
    "pattern": {"type": "string", "format": "regex"},
    "enum": {"type": "array"},
    "readonly": {"type": "boolean"},
    "default": {},
    "items": {"type": "object", "properties": {
        "type": {"type": "string", "enum": [t for t in PROPERTY_TYPES if t]},
        "enum": {"type": "array"}}, "additionalProperties": False},
    "maxItems": _POSITIVE,
    "minItems": _POSITIVE,
    "uniqueItems": {"type": "boolean", "default": False},
    "additionalItems": {"type": "boolean"},
}
PROPERTY = {"type": "object", "properties": PROPERTY_FIELDS,
            "required": ["name", "title", "type"], "additionalProperties": False}
# A property nested in a namespace or object: keyed by its name, so without `name`.
NESTED_PROPERTY = {"type": "object",
                   "properties": {k: v for k, v in PROPERTY_FIELDS.items() if k != "name"},
                   "required": ["title", "type"], "additionalProperties": False}
OBJECT = {
    "type": "object",
    "properties": {
        "name": _NAME,
        "description": _text(),
        "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "properties": {"type": "object", "additionalProperties": NESTED_PROPERTY,
                       "propertyNames": _PROPERTY_NAME},
        "schema": {"type": "string"}, "self": {"type": "string"}, **_TIMESTAMPS,
    },
    "required": ["name"], "additionalProperties": False,
}
TAG_NAME = {**_NAME, "maxLength": 255}
TAG = {"type": "object", "properties": {"name": TAG_NAME,
                                        "schema": {"type": "string"},
                                        "self": {"type": "string"}, **_TIMESTAMPS},
       "required": ["name"], "additionalProperties": False}
TAGS = {"type": "object", "properties": {"tags": {"type": "array", "items": TAG}},
        "required": ["tags"], "additionalProperties": False}
RESOURCE_TYPE_ASSOCIATION = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX,
                 "pattern": _PRINTABLE, "description": "Resource type names should be aligned with Heat resource "
                                "types whenever possible."},
        "prefix": _text(NAME_MAX),
        "properties_target": _text(NAME_MAX),
        **_TIMESTAMPS,
    },
    "required": ["name"], "additionalProperties": False,
}
NAMESPACE = {
    "type": "object",
    "properties": {
        "namespace": _NAME,
        "display_name": _text(NAME_MAX),
        "description": _text(500),
        "visibility": {"type": "string", "enum": ["public", "private"]},
        "protected": {"type": "boolean"},
        "owner": _text(255, minLength=1),
        "resource_type_associations": {"type": "array", "items": RESOURCE_TYPE_ASSOCIATION},
        "properties": {"type": "object", "additionalProperties": NESTED_PROPERTY,
                       "propertyNames": _PROPERTY_NAME},
        "objects": {"type": "array", "items": OBJECT},
        "tags": {"type": "array", "items": TAG},
        "schema": {"type": "string"}, "self": {"type": "string"}, **_TIMESTAMPS,
    },
    "required": ["namespace"], "additionalProperties": False,
}
TASK_INPUT = {
    "type": "object",
    "properties": {
        "import_from": _text(2048, minLength=1),
        "import_from_format": _text(32),
        "image_properties": {"type": "object"},
    },
    "required": ["import_from", "import_from_format", "image_properties"],
}
CREATE_TASK = {
    "type": "object",
    "properties": {"type": {"type": "string", "enum": ["import"]}, "input": TASK_INPUT},
    "required": ["type", "input"], "additionalProperties": False,
}
TASK_DOC = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "An identifier for the task"},
        "type": {"type": "string", "enum": ["import"], "description": "The type of task"},
        "status": {"type": "string", "enum": ["pending", "processing", "success", "failure"],
                   "description": "The current status of this task"},
        "input": {"type": "object", "description": "The parameters required by task"},
        "result": {"type": ["null", "object"], "description": "The result of current task"},
        "owner": {"type": "string", "description": "An identifier for the owner of this task"},
        "message": {"type": "string",
                    "description": "Human-readable informative message only included when "
                                   "appropriate (usually on failure)"},
        "expires_at": {"type": ["null", "string"],
                       "description": "Datetime when this resource would be subject to "
                                      "removal"},
        "self": {"type": "string"}, "schema": {"type": "string"}, **_TIMESTAMPS,
    },
}


def _named(name: str, schema: dict) -> dict:
    doc = copy.deepcopy(schema)
    doc["name"] = name
    return doc


def _collection(name: str, item_name: str, item: dict, extra: dict | None = None) -> dict:
    return {
        "name": name,
        "properties": {
            name: {"type": "array", "items": _named(item_name, item)},
            "first": {"type": "string"}, "next": {"type": "string"},
            "schema": {"type": "string"}, **(extra or {}),
        },
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


def served() -> dict[str, dict]:
    """Every schema by its path under /v2/schemas/."""
    properties = {"name": "properties", "properties": {
        "properties": {"type": "object", "additionalProperties": NESTED_PROPERTY,
                       "propertyNames": _PROPERTY_NAME},
        "schema": {"type": "string"}}}
    return {
        "metadefs/namespace": _named("namespace", NAMESPACE),
        "metadefs/namespaces": _collection("namespaces", "namespace", NAMESPACE),
        "metadefs/object": _named("object", OBJECT),
        "metadefs/objects": _collection("objects", "object", OBJECT),
        "metadefs/property": _named("property", PROPERTY),
        "metadefs/properties": properties,
        "metadefs/resource_type": _named("resource_type_association",
                                         RESOURCE_TYPE_ASSOCIATION),
        "metadefs/resource_types": _collection("resource_type_associations",
                                               "resource_type_association",
                                               RESOURCE_TYPE_ASSOCIATION),
        "metadefs/tag": _named("tag", TAG),
        "metadefs/tags": _collection("tags", "tag", TAG),
        "task": _named("task", TASK_DOC),
        "tasks": _collection("tasks", "task", TASK_DOC),
    }
