"""Metadata definitions: namespaces, resource types and their associations, and the metadefs
schemas. Glance's default policy: admins write; readers read public namespaces and their
own project's (storage/metadefs.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote, urlencode

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.image import metadef_schemas
from cirrus.api.validation import validate
from cirrus.errors import BadRequest, NotFound
from cirrus.identity.policy import ADMIN, READ, authorize
from cirrus.storage import metadefs
from cirrus.storage.metadefs import NamespaceDetail

DEFAULT_LIMIT = 25
MAX_LIMIT = 1000


def isotime(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def ns_url(namespace: str) -> str:
    return f"/v2/metadefs/namespaces/{quote(namespace, safe='')}"


def association_view(assoc: Any) -> dict:
    body = {"name": assoc.resource_type, "created_at": isotime(assoc.created_at),
            "updated_at": isotime(assoc.updated_at or assoc.created_at)}
    if assoc.prefix is not None:
        body["prefix"] = assoc.prefix
    if assoc.properties_target is not None:
        body["properties_target"] = assoc.properties_target
    return body


def object_view(namespace: str, obj: Any) -> dict:
    body: dict[str, Any] = {
        "name": obj.name, "required": list(obj.required or []),
        "properties": dict(obj.properties or {}),
        "created_at": isotime(obj.created_at),
        "updated_at": isotime(obj.updated_at or obj.created_at),
        "self": f"{ns_url(namespace)}/objects/{quote(obj.name, safe='')}",
        "schema": "/v2/schemas/metadefs/object",
    }
    if obj.description is not None:
        body["description"] = obj.description
    return body


def property_view(prop: Any) -> dict:
    return {"name": prop.name, **(prop.json_schema or {})}


def tag_view(tag: Any) -> dict:
    return {"name": tag.name, "created_at": isotime(tag.created_at),
            "updated_at": isotime(tag.updated_at or tag.created_at)}


def namespace_view(detail: NamespaceDetail) -> dict:
    ns = detail.namespace
    body: dict[str, Any] = {
        "namespace": ns.namespace, "visibility": ns.visibility, "protected": ns.protected,
        "owner": ns.owner, "created_at": isotime(ns.created_at),
        "updated_at": isotime(ns.updated_at or ns.created_at),
        "self": ns_url(ns.namespace), "schema": "/v2/schemas/metadefs/namespace",
    }
    for name in ("display_name", "description"):
        if getattr(ns, name) is not None:
            body[name] = getattr(ns, name)
    if detail.associations:
        body["resource_type_associations"] = [association_view(a) for a in detail.associations]
    if detail.objects:
        body["objects"] = [object_view(ns.namespace, o) for o in detail.objects]
    if detail.properties:
        body["properties"] = {p.name: p.json_schema for p in detail.properties}
    if detail.tags:
        body["tags"] = [{"name": t.name} for t in detail.tags]
    return body


def json_body(req: ApiRequest, schema: dict) -> dict:
    body = req.json
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    validate(schema, body)
    return body


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise BadRequest(f"Invalid input for field/attribute limit. Value: {value}. "
                         "It must be a non-negative integer.")
    return min(limit, MAX_LIMIT)


def list_namespaces(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "get_metadef_namespaces")
    q = req.query
    sort_key, sort_dir = q.get("sort_key", "created_at"), q.get("sort_dir", "desc")
    metadefs.check_sort(sort_key, sort_dir)
    visibility = q.get("visibility")
    if visibility is not None and visibility not in ("public", "private"):
        raise BadRequest(f"Invalid input for field/attribute visibility. Value: {visibility}. "
                         "It must be public or private.")
    types = [t.strip() for t in q.get("resource_types", "").split(",") if t.strip()]
    limit = _limit(q.get("limit"))
    page, more = metadefs.list_namespaces(
        req.cloud.db, req.ctx, limit=limit, marker=q.get("marker"), sort_key=sort_key,
        sort_dir=sort_dir, visibility=visibility, resource_types=types)
    params = [(k, v) for k, v in q.multi_items() if k != "marker"]
    body: dict[str, Any] = {
        "namespaces": [namespace_view(d) for d in page],
        "first": "/v2/metadefs/namespaces" + (f"?{urlencode(params)}" if params else ""),
        "schema": "/v2/schemas/metadefs/namespaces",
    }
    if more and page:
        body["next"] = "/v2/metadefs/namespaces?" + urlencode(
            [*params, ("marker", page[-1].namespace.namespace)])
    return body


def create_namespace(req: ApiRequest) -> Reply:
    authorize(req.ctx, ADMIN, "add_metadef_namespace")
    body = json_body(req, metadef_schemas.NAMESPACE)
    detail = metadefs.create_namespace(req.cloud.db, req.ctx, body)
    return Reply(201, namespace_view(detail),
                 {"Location": f"{req.base_url}/image{ns_url(detail.namespace.namespace)}"})


def show_namespace(req: ApiRequest, namespace: str) -> dict:
    authorize(req.ctx, READ, "get_metadef_namespace")
    return namespace_view(metadefs.get_namespace(req.cloud.db, req.ctx, namespace))


def update_namespace(req: ApiRequest, namespace: str) -> dict:
    authorize(req.ctx, ADMIN, "modify_metadef_namespace")
    body = json_body(req, metadef_schemas.NAMESPACE)
    for nested in ("resource_type_associations", "properties", "objects", "tags"):
        if nested in body:
            raise BadRequest(f"Invalid input for field/attribute {nested}: a namespace update "
                             "changes its own fields only; use the sub-resource's routes.")
    return namespace_view(metadefs.update_namespace(req.cloud.db, req.ctx, namespace, body))


def delete_namespace(req: ApiRequest, namespace: str) -> None:
    authorize(req.ctx, ADMIN, "delete_metadef_namespace")
    metadefs.delete_namespace(req.cloud.db, req.ctx, namespace)


def list_resource_types(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "list_metadef_resource_types")
    since = isotime(metadefs.RESOURCE_TYPES_SINCE)
    return {"resource_types": [{"name": name, "created_at": since, "updated_at": since}
                               for name in metadefs.RESOURCE_TYPES]}


def list_associations(req: ApiRequest, namespace: str) -> dict:
    authorize(req.ctx, READ, "get_metadef_resource_type")
    return {"resource_type_associations": [
        association_view(a)
        for a in metadefs.list_associations(req.cloud.db, req.ctx, namespace)]}


def add_association(req: ApiRequest, namespace: str) -> Reply:
    authorize(req.ctx, ADMIN, "add_metadef_resource_type_association")
    body = json_body(req, metadef_schemas.RESOURCE_TYPE_ASSOCIATION)
    for ignored in ("created_at", "updated_at"):
        body.pop(ignored, None)
    return Reply(201, association_view(
        metadefs.add_association(req.cloud.db, req.ctx, namespace, body)))


def remove_association(req: ApiRequest, namespace: str, resource_type: str) -> None:
    authorize(req.ctx, ADMIN, "remove_metadef_resource_type_association")
    metadefs.remove_association(req.cloud.db, req.ctx, namespace, resource_type)


_SCHEMAS = metadef_schemas.served()


def show_schema(req: ApiRequest, name: str) -> dict:
    authorize(req.ctx, READ, "get_schema")
    schema = _SCHEMAS.get(f"metadefs/{name}")
    if schema is None:
        raise NotFound(f"No schema metadefs/{name}.")
    return schema


ROUTES: list = [
    ("GET", "/v2/metadefs/namespaces", list_namespaces),
    ("POST", "/v2/metadefs/namespaces", create_namespace),
    ("GET", "/v2/metadefs/namespaces/{namespace}", show_namespace),
    ("PUT", "/v2/metadefs/namespaces/{namespace}", update_namespace),
    ("DELETE", "/v2/metadefs/namespaces/{namespace}", delete_namespace),
    ("GET", "/v2/metadefs/resource_types", list_resource_types),
    ("GET", "/v2/metadefs/namespaces/{namespace}/resource_types", list_associations),
    ("POST", "/v2/metadefs/namespaces/{namespace}/resource_types", add_association),
    ("DELETE", "/v2/metadefs/namespaces/{namespace}/resource_types/{resource_type}",
     remove_association),
    ("GET", "/v2/schemas/metadefs/{name}", show_schema),
]
