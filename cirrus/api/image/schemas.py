"""JSON schemas of the image API: the image document (served at /v2/schemas/image and used to
validate creates and patches), the image collection, and the JSON-patch body."""

from __future__ import annotations

import copy

CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
VISIBILITIES = ["community", "public", "private", "shared"]
STATUSES = ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated"]

_UUID = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
_INT32_MAX = 2**31 - 1
PROPERTY_VALUE_MAX = 65535


def _ro(schema: dict, description: str) -> dict:
    return {**schema, "readOnly": True, "description": description}


IMAGE_PROPERTIES: dict = {
    "id": {"type": "string", "pattern": _UUID, "description": "An identifier for the image"},
    "name": {"type": ["null", "string"], "maxLength": 255,
             "description": "Descriptive name for the image"},
    "status": _ro({"type": "string", "enum": STATUSES}, "Status of the image"),
    "visibility": {"type": "string", "enum": VISIBILITIES,
                   "description": "Scope of image accessibility"},
    "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
    "os_hidden": {"type": "boolean",
                  "description": "If true, image will not appear in default image list response."},
    "checksum": _ro({"type": ["null", "string"], "maxLength": 32}, "md5 hash of image contents."),
    "os_hash_algo": _ro({"type": ["null", "string"], "maxLength": 64},
                        "Algorithm to calculate the os_hash_value"),
    "os_hash_value": _ro({"type": ["null", "string"], "maxLength": 128},
                         "Hexdigest of the image contents using the algorithm specified by "
                         "the os_hash_algo"),
    "owner": {"type": ["null", "string"], "maxLength": 255, "description": "Owner of the image"},
    "size": _ro({"type": ["null", "integer"]}, "Size of image file in bytes"),
    "virtual_size": _ro({"type": ["null", "integer"]}, "Virtual size of image in bytes"),
    "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS],
                         "description": "Format of the container"},
    "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS],
                    "description": "Format of the disk"},
    "created_at": _ro({"type": "string"}, "Date and time of image registration"),
    "updated_at": _ro({"type": "string"}, "Date and time of the last image modification"),
    "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255},
             "description": "List of strings related to the image"},
    "direct_url": _ro({"type": "string"}, "URL to access the image file kept in external store"),
    "min_ram": {"type": "integer", "minimum": 0, "maximum": _INT32_MAX,
                "description": "Amount of ram (in MB) required to boot image."},
    "min_disk": {"type": "integer", "minimum": 0, "maximum": _INT32_MAX,
                 "description": "Amount of disk space (in GB) required to boot image."},
    "self": _ro({"type": "string"}, "An image self url"),
    "file": _ro({"type": "string"}, "An image file url"),
    "stores": _ro({"type": "string"}, "Store in which image data resides."),
    "schema": _ro({"type": "string"}, "An image schema url"),
}

# Extra properties are free-form strings, as in Glance's permissive image schema.
EXTRA_PROPERTY = {"type": "string", "maxLength": PROPERTY_VALUE_MAX}

IMAGE = {
    "name": "image",
    "properties": IMAGE_PROPERTIES,
    "additionalProperties": EXTRA_PROPERTY,
    "propertyNames": {"minLength": 1, "maxLength": 255},
    "links": [
        {"rel": "self", "href": "{self}"},
        {"rel": "enclosure", "href": "{file}"},
        {"rel": "describedby", "href": "{schema}"},
    ],
}

IMAGES = {
    "name": "images",
    "properties": {
        "images": {"type": "array", "items": IMAGE},
        "first": {"type": "string"},
        "next": {"type": "string"},
        "schema": {"type": "string"},
    },
    "links": [
        {"rel": "first", "href": "{first}"},
        {"rel": "next", "href": "{next}"},
        {"rel": "describedby", "href": "{schema}"},
    ],
}

# The body of POST /v2/images: an image document (read-only fields are refused before this).
CREATE_IMAGE = {"type": "object", "properties": IMAGE_PROPERTIES,
                "additionalProperties": EXTRA_PROPERTY,
                "propertyNames": {"minLength": 1, "maxLength": 255}}

# The body of PATCH /v2/images/{id}: a list of operation objects; the op and path members are
# checked by the handler so that the messages match Glance's.
PATCH_BODY = {"type": "array", "items": {"type": "object"}}


def image_schema() -> dict:
    """A copy of the image schema document, safe for the caller to change."""
    return copy.deepcopy(IMAGE)


def images_schema() -> dict:
    return copy.deepcopy(IMAGES)


MEMBER_STATUSES = ["pending", "accepted", "rejected"]

MEMBER = {
    "name": "member",
    "properties": {
        "created_at": {"type": "string", "description": "Date and time of image member creation"},
        "image_id": {"type": "string", "pattern": _UUID,
                     "description": "An identifier for the image"},
        "member_id": {"type": "string",
                      "description": "An identifier for the image member (tenantId)"},
        "schema": {"type": "string", "readOnly": True},
        "status": {"type": "string", "enum": MEMBER_STATUSES,
                   "description": "The status of this image member"},
        "updated_at": {"type": "string",
                       "description": "Date and time of last modification of image member"},
    },
}

MEMBERS = {
    "name": "members",
    "properties": {"members": {"type": "array", "items": MEMBER}, "schema": {"type": "string"}},
    "links": [{"rel": "describedby", "href": "{schema}"}],
}

# POST /v2/images/{id}/members and PUT .../members/{member}
CREATE_MEMBER = {"type": "object", "required": ["member"],
                 "properties": {"member": {"type": "string", "minLength": 1, "maxLength": 64}}}
UPDATE_MEMBER = {"type": "object", "required": ["status"],
                 "properties": {"status": {"type": "string", "enum": MEMBER_STATUSES}}}

# POST /v2/images/{id}/import
IMPORT_BODY = {
    "type": "object", "required": ["method"],
    "properties": {
        "method": {"type": "object", "required": ["name"],
                   "properties": {"name": {"type": "string"}, "uri": {"type": "string"}}},
        "stores": {"type": "array", "items": {"type": "string"}},
        "all_stores": {"type": "boolean"},
        "all_stores_must_succeed": {"type": "boolean"},
    },
}


def member_schema() -> dict:
    return copy.deepcopy(MEMBER)


def members_schema() -> dict:
    return copy.deepcopy(MEMBERS)
