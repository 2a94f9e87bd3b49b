"""Metadata definition objects, properties and tags of a namespace (Glance's routes and
policy: admins write, readers read what the namespace's visibility lets them see)."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.image import metadef_schemas
from cirrus.api.image.metadefs import json_body, object_view, property_view, tag_view
from cirrus.api.validation import validate
from cirrus.errors import BadRequest
from cirrus.identity.policy import ADMIN, READ, authorize
from cirrus.storage import metadef_items

_READ_ONLY = ("created_at", "updated_at", "self", "schema")
_TAG_NAME = {"type": "object", "properties": {"name": metadef_schemas.TAG_NAME}}


def _clean(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in _READ_ONLY}


# --- objects

def list_objects(req: ApiRequest, namespace: str) -> dict:
    authorize(req.ctx, READ, "get_metadef_objects")
    objects = metadef_items.list_items(req.cloud.db, req.ctx, "object", namespace)
    return {"objects": [object_view(namespace, o) for o in objects],
            "schema": "/v2/schemas/metadefs/objects"}


def create_object(req: ApiRequest, namespace: str) -> Reply:
    authorize(req.ctx, ADMIN, "add_metadef_object")
    body = _clean(json_body(req, metadef_schemas.OBJECT))
    obj = metadef_items.create_item(req.cloud.db, req.ctx, "object", namespace, body)
    return Reply(201, object_view(namespace, obj))


def show_object(req: ApiRequest, namespace: str, name: str) -> dict:
    authorize(req.ctx, READ, "get_metadef_object")
    return object_view(namespace, metadef_items.get_item(req.cloud.db, req.ctx, "object",
                                                         namespace, name))


def update_object(req: ApiRequest, namespace: str, name: str) -> dict:
    authorize(req.ctx, ADMIN, "modify_metadef_object")
    body = _clean(json_body(req, metadef_schemas.OBJECT))
    return object_view(namespace, metadef_items.update_item(req.cloud.db, req.ctx, "object",
                                                            namespace, name, body))


def delete_object(req: ApiRequest, namespace: str, name: str) -> None:
    authorize(req.ctx, ADMIN, "delete_metadef_object")
    metadef_items.delete_item(req.cloud.db, req.ctx, "object", namespace, name)


# --- properties

def list_properties(req: ApiRequest, namespace: str) -> dict:
    authorize(req.ctx, READ, "get_metadef_properties")
    props = metadef_items.list_items(req.cloud.db, req.ctx, "property", namespace)
    return {"properties": {p.name: dict(p.json_schema or {}) for p in props}}


def create_property(req: ApiRequest, namespace: str) -> Reply:
    authorize(req.ctx, ADMIN, "add_metadef_property")
    body = json_body(req, metadef_schemas.PROPERTY)
    prop = metadef_items.create_item(req.cloud.db, req.ctx, "property", namespace, body)
    return Reply(201, property_view(prop))


def show_property(req: ApiRequest, namespace: str, name: str) -> dict:
    authorize(req.ctx, READ, "get_metadef_property")
    return property_view(metadef_items.get_item(req.cloud.db, req.ctx, "property", namespace,
                                                name))


def update_property(req: ApiRequest, namespace: str, name: str) -> dict:
    authorize(req.ctx, ADMIN, "modify_metadef_property")
    body = json_body(req, metadef_schemas.PROPERTY)
    return property_view(metadef_items.update_item(req.cloud.db, req.ctx, "property",
                                                   namespace, name, body))


def delete_property(req: ApiRequest, namespace: str, name: str) -> None:
    authorize(req.ctx, ADMIN, "remove_metadef_property")
    metadef_items.delete_item(req.cloud.db, req.ctx, "property", namespace, name)


# --- tags

def _tag_name(name: str) -> str:
    validate(_TAG_NAME, {"name": name})
    return name


def list_tags(req: ApiRequest, namespace: str) -> dict:
    authorize(req.ctx, READ, "get_metadef_tags")
    tags = metadef_items.list_items(req.cloud.db, req.ctx, "tag", namespace)
    return {"tags": [tag_view(t) for t in tags]}


def create_tags(req: ApiRequest, namespace: str) -> Reply:
    """Glance's bulk create: replaces the namespace's tags (adds, with X-Openstack-Append)."""
    authorize(req.ctx, ADMIN, "add_metadef_tags")
    body = json_body(req, metadef_schemas.TAGS)
    if len(body["tags"]) > metadef_items.MAX_TAGS_PER_REQUEST:
        raise BadRequest(f"Invalid input for field/attribute tags: at most "
                         f"{metadef_items.MAX_TAGS_PER_REQUEST} tags per request.")
    append = req.headers.get("x-openstack-append", "").lower() in ("true", "1", "yes")
    tags = metadef_items.replace_tags(req.cloud.db, req.ctx, namespace,
                                      [t["name"] for t in body["tags"]], append=append)
    return Reply(201, {"tags": [{"name": t.name} for t in tags]})


def delete_tags(req: ApiRequest, namespace: str) -> None:
    authorize(req.ctx, ADMIN, "delete_metadef_tags")
    metadef_items.delete_tags(req.cloud.db, req.ctx, namespace)


def create_tag(req: ApiRequest, namespace: str, name: str) -> Reply:
    authorize(req.ctx, ADMIN, "add_metadef_tag")
    tag = metadef_items.create_item(req.cloud.db, req.ctx, "tag", namespace,
                                    {"name": _tag_name(name)})
    return Reply(201, tag_view(tag))


def show_tag(req: ApiRequest, namespace: str, name: str) -> dict:
    authorize(req.ctx, READ, "get_metadef_tag")
    return tag_view(metadef_items.get_item(req.cloud.db, req.ctx, "tag", namespace, name))


def update_tag(req: ApiRequest, namespace: str, name: str) -> dict:
    authorize(req.ctx, ADMIN, "modify_metadef_tag")
    body = _clean(json_body(req, metadef_schemas.TAG))
    return tag_view(metadef_items.update_item(req.cloud.db, req.ctx, "tag", namespace, name,
                                              body))


def delete_tag(req: ApiRequest, namespace: str, name: str) -> None:
    authorize(req.ctx, ADMIN, "delete_metadef_tag")
    metadef_items.delete_item(req.cloud.db, req.ctx, "tag", namespace, name)


_NS = "/v2/metadefs/namespaces/{namespace}"
ROUTES: list = [
    ("GET", f"{_NS}/objects", list_objects),
    ("POST", f"{_NS}/objects", create_object),
    ("GET", f"{_NS}/objects/{{name}}", show_object),
    ("PUT", f"{_NS}/objects/{{name}}", update_object),
    ("DELETE", f"{_NS}/objects/{{name}}", delete_object),
    ("GET", f"{_NS}/properties", list_properties),
    ("POST", f"{_NS}/properties", create_property),
    ("GET", f"{_NS}/properties/{{name}}", show_property),
    ("PUT", f"{_NS}/properties/{{name}}", update_property),
    ("DELETE", f"{_NS}/properties/{{name}}", delete_property),
    ("GET", f"{_NS}/tags", list_tags),
    ("POST", f"{_NS}/tags", create_tags),
    ("DELETE", f"{_NS}/tags", delete_tags),
    ("POST", f"{_NS}/tags/{{name}}", create_tag),
    ("GET", f"{_NS}/tags/{{name}}", show_tag),
    ("PUT", f"{_NS}/tags/{{name}}", update_tag),
    ("DELETE", f"{_NS}/tags/{{name}}", delete_tag),
]
