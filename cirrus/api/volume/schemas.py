"""Request schemas of the block-storage API (checked by cirrus.api.validation: a 400 names
the field)."""

from __future__ import annotations

from typing import Any

from cirrus.api.validation import boolean, metadata

_size = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 0x7FFFFFFF},
                   {"type": "string", "pattern": r"^[1-9][0-9]{0,9}$"}]}
_nullable_size = {"anyOf": [_size, {"type": "null"}]}
_text = {"type": ["string", "null"], "maxLength": 255}
_id = {"type": ["string", "null"], "maxLength": 36}
_name = {"type": "string", "minLength": 1, "maxLength": 255}
# Cinder allows null metadata on create and update (`openstack volume create` sends it).
_metadata_or_null = {**metadata, "type": ["object", "null"]}


def _wrap(key: str, inner: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"type": "object", "properties": {key: inner},
            "required": [key] if required else []}


VOLUME_CREATE = _wrap("volume", {
    "type": "object",
    "properties": {
        "size": _nullable_size, "name": _text, "display_name": _text, "description": _text,
        "display_description": _text, "volume_type": _text,
        "availability_zone": _text, "metadata": _metadata_or_null, "snapshot_id": _id,
        "source_volid": _id, "imageRef": _id, "image_id": _id, "multiattach": boolean,
        "backup_id": {"type": "null"}, "group_id": {"type": "null"},
        "consistencygroup_id": {"type": "null"}, "source_replica": {"type": "null"},
    },
})
VOLUME_UPDATE = _wrap("volume", {
    "type": "object",
    "properties": {"name": _text, "display_name": _text, "description": _text,
                   "display_description": _text, "metadata": _metadata_or_null},
    "additionalProperties": False,
})
METADATA = _wrap("metadata", metadata)
META_ITEM = _wrap("meta", {**metadata, "minProperties": 1, "maxProperties": 1})

EXTEND = _wrap("os-extend", {"type": "object", "properties": {"new_size": _size},
                             "required": ["new_size"]})
SET_BOOTABLE = _wrap("os-set_bootable", {"type": "object", "properties": {"bootable": boolean},
                                         "required": ["bootable"]})
UPDATE_READONLY = _wrap("os-update_readonly_flag", {
    "type": "object", "properties": {"readonly": boolean}, "required": ["readonly"]})
SET_IMAGE_METADATA = _wrap("os-set_image_metadata", {
    "type": "object", "properties": {"metadata": metadata}, "required": ["metadata"]})
UNSET_IMAGE_METADATA = _wrap("os-unset_image_metadata", {
    "type": "object", "properties": {"key": {"type": "string", "minLength": 1,
                                             "maxLength": 255}},
    "required": ["key"]})
RETYPE = _wrap("os-retype", {
    "type": "object",
    "properties": {"new_type": {"type": "string", "minLength": 1, "maxLength": 255},
                   "migration_policy": {"type": ["string", "null"],
                                        "enum": ["never", "on-demand", None]}},
    "required": ["new_type"]})
RESET_STATUS = _wrap("os-reset_status", {
    "type": "object",
    "properties": {"status": {"type": "string", "maxLength": 32},
                   "attach_status": {"type": "string", "maxLength": 32},
                   "migration_status": {"type": ["string", "null"]}},
})
FORCE_DELETE = _wrap("os-force_delete", {"type": ["object", "null"]})

SNAPSHOT_CREATE = _wrap("snapshot", {
    "type": "object",
    "properties": {"volume_id": {"type": ["string", "null"], "maxLength": 36},
                   "name": _text, "display_name": _text, "description": _text,
                   "display_description": _text, "force": boolean,
                   "metadata": _metadata_or_null},  # `openstack volume snapshot create` sends null
})
SNAPSHOT_UPDATE = _wrap("snapshot", {
    "type": "object",
    "properties": {"name": _text, "display_name": _text, "description": _text,
                   "display_description": _text},
    "additionalProperties": False,
})
SNAPSHOT_RESET_STATUS = _wrap("os-reset_status", {
    "type": "object", "properties": {"status": {"type": "string", "maxLength": 32}},
    "required": ["status"]})

SNAPSHOT_UPDATE_STATUS = _wrap("os-update_snapshot_status", {
    "type": "object", "properties": {"status": {"type": "string", "maxLength": 32},
                                     "progress": {"type": "string", "maxLength": 16}},
    "required": ["status"]})

_specs = {"type": "object",
          "patternProperties": {r"^[a-zA-Z0-9-_:. /]{1,255}$": {
              "type": ["string", "integer", "boolean"]}},
          "additionalProperties": False}
TYPE_CREATE = _wrap("volume_type", {
    "type": "object",
    "properties": {"name": _name, "description": _text, "extra_specs": _specs,
                   "os-volume-type-access:is_public": boolean, "is_public": boolean},
    "required": ["name"],
})
TYPE_UPDATE = _wrap("volume_type", {
    "type": "object",
    "properties": {"name": _name, "description": _text, "is_public": boolean},
})
EXTRA_SPECS = _wrap("extra_specs", _specs)
ADD_ACCESS = _wrap("addProjectAccess", {
    "type": "object", "properties": {"project": {"type": "string", "minLength": 1,
                                                 "maxLength": 64}},
    "required": ["project"]})
REMOVE_ACCESS = _wrap("removeProjectAccess", ADD_ACCESS["properties"]["addProjectAccess"])

QOS_CREATE = _wrap("qos_specs", {
    "type": "object",
    "properties": {"name": _name, "consumer": {"type": "string"}},
    "additionalProperties": {"type": ["string", "integer"]},
    "required": ["name"],
})
QOS_UPDATE = _wrap("qos_specs", {"type": "object", "minProperties": 1,
                                 "additionalProperties": {"type": ["string", "integer"]}})
QOS_UNSET = {"type": "object", "properties": {"keys": {
    "type": "array", "items": {"type": "string", "maxLength": 255}, "minItems": 1}},
    "required": ["keys"]}

_limit = {"anyOf": [{"type": "integer", "minimum": -1, "maximum": 0x7FFFFFFF},
                    {"type": "string", "pattern": r"^-?[0-9]{1,10}$"}]}
QUOTA_UPDATE = _wrap("quota_set", {"type": "object",
                                   "additionalProperties": _limit})
QUOTA_CLASS_UPDATE = _wrap("quota_class_set", {"type": "object",
                                               "additionalProperties": _limit})

# os-volume_upload_image (visibility and protected from 3.1) and revert (3.40)
_upload_props: dict[str, Any] = {
    "image_name": {"type": "string", "minLength": 1, "maxLength": 255},
    "force": boolean,
    "disk_format": {"type": "string",
                    "enum": ["raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx"]},
    "container_format": {"type": "string", "enum": ["bare"]},
}
UPLOAD_IMAGE = _wrap("os-volume_upload_image", {
    "type": "object", "properties": _upload_props, "required": ["image_name"],
    "additionalProperties": False,
})
UPLOAD_IMAGE_31 = _wrap("os-volume_upload_image", {
    "type": "object",
    "properties": {**_upload_props,
                   "visibility": {"type": "string",
                                  "enum": ["public", "private", "shared", "community"]},
                   "protected": boolean},
    "required": ["image_name"], "additionalProperties": False,
})
REVERT = _wrap("revert", {
    "type": "object",
    "properties": {"snapshot_id": {"type": "string", "minLength": 1, "maxLength": 36}},
    "required": ["snapshot_id"], "additionalProperties": False,
})
