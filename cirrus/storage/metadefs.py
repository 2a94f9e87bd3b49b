"""Metadata definition namespaces and their resource type associations, by Glance's rules.

A namespace is `public` (every project reads it) or `private` (its owner project only); an
admin sees every namespace. Only admins write (Glance's default policy; the API checks the
role): create, update, delete, and what lives in a namespace (metadef_items.py). A
`protected` namespace cannot be deleted, nor can what it holds, until it is unprotected.
The resource types are Glance's fixed list (RESOURCE_TYPES); a namespace is associated with
any of them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import (
    MetadefNamespace,
    MetadefObject,
    MetadefProperty,
    MetadefResourceTypeAssociation,
    MetadefTag,
    utcnow,
)
from cirrus.errors import BadRequest, Conflict, Forbidden, NotFound

# Glance's resource types (those its bundled definitions use), in Glance's order.
RESOURCE_TYPES = ("OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor",
                  "OS::Nova::Aggregate", "OS::Nova::Server", "OS::Trove::Instance",
                  "OS::Glance::Snapshot", "OS::Nova::Instance", "OS::Cinder::Snapshot")
RESOURCE_TYPES_SINCE = dt.datetime(2014, 8, 28, 17, 13, 4)
NAMESPACE_FIELDS = ("namespace", "display_name", "description", "visibility", "protected")
SORT_KEYS = ("created_at", "updated_at", "namespace", "display_name")


@dataclass
class NamespaceDetail:
    """A namespace with what it holds, for show."""

    namespace: MetadefNamespace
    associations: list[MetadefResourceTypeAssociation] = field(default_factory=list)
    objects: list[MetadefObject] = field(default_factory=list)
    properties: list[MetadefProperty] = field(default_factory=list)
    tags: list[MetadefTag] = field(default_factory=list)


def _visible_clause(ctx: RequestContext) -> Any:
    return or_(MetadefNamespace.visibility == "public", MetadefNamespace.owner == ctx.project_id)


def visible_namespace(s: Session, ctx: RequestContext, name: str) -> MetadefNamespace:
    """The namespace by name, if the caller may see it; NotFound otherwise (never Forbidden:
    another project's private namespace does not exist for the caller)."""
    query = select(MetadefNamespace).where(MetadefNamespace.namespace == name)
    if not ctx.is_admin:
        query = query.where(_visible_clause(ctx))
    ns = s.scalar(query)
    if ns is None:
        raise NotFound(f"Metadata definition namespace={name} was not found.")
    return ns


def check_unprotected(ns: MetadefNamespace, what: str) -> None:
    if ns.protected:
        raise Forbidden(f"Namespace {ns.namespace} is protected and cannot be modified: "
                        f"{what}. Set protected to false first.")


def check_resource_type(name: str) -> None:
    if name not in RESOURCE_TYPES:
        raise NotFound(f"Metadata definition resource-type with name={name} was not found. "
                       f"Known resource types: {', '.join(RESOURCE_TYPES)}.")


def list_namespaces(db: Database, ctx: RequestContext, *, limit: int, marker: str | None,
                    sort_key: str, sort_dir: str, visibility: str | None,
                    resource_types: list[str]) -> tuple[list[NamespaceDetail], bool]:
    """One page of the namespaces the caller sees, and whether there are more."""
    with db.reader() as s:
        query = select(MetadefNamespace)
        if not ctx.is_admin:
            query = query.where(_visible_clause(ctx))
        if visibility:
            query = query.where(MetadefNamespace.visibility == visibility)
        if resource_types:
            query = query.where(exists().where(
                MetadefResourceTypeAssociation.namespace_id == MetadefNamespace.id,
                MetadefResourceTypeAssociation.resource_type.in_(resource_types)))
        column = getattr(MetadefNamespace, sort_key)
        order = [column.desc(), MetadefNamespace.id.desc()] if sort_dir == "desc" \
            else [column.asc(), MetadefNamespace.id.asc()]
        rows = list(s.scalars(query.order_by(*order)))
        if marker is not None:
            names = [ns.namespace for ns in rows]
            if marker not in names:
                raise NotFound(f"Metadata definition namespace={marker} was not found.")
            rows = rows[names.index(marker) + 1:]
        page = rows[:limit]
        return [NamespaceDetail(ns, _associations(s, ns.id)) for ns in page], len(rows) > limit


def _associations(s: Session, namespace_id: str) -> list[MetadefResourceTypeAssociation]:
    return list(s.scalars(select(MetadefResourceTypeAssociation)
                          .where(MetadefResourceTypeAssociation.namespace_id == namespace_id)
                          .order_by(MetadefResourceTypeAssociation.created_at,
                                    MetadefResourceTypeAssociation.resource_type)))


def _in(s: Session, model: Any, namespace_id: str) -> list:
    return list(s.scalars(select(model).where(model.namespace_id == namespace_id)
                          .order_by(model.created_at, model.name)))


def get_namespace(db: Database, ctx: RequestContext, name: str) -> NamespaceDetail:
    with db.reader() as s:
        ns = visible_namespace(s, ctx, name)
        return NamespaceDetail(ns, _associations(s, ns.id), _in(s, MetadefObject, ns.id),
                               _in(s, MetadefProperty, ns.id), _in(s, MetadefTag, ns.id))


def _duplicate(name: str) -> Conflict:
    return Conflict(f"A metadata definition namespace with name={name} already exists.")


def create_namespace(db: Database, ctx: RequestContext, body: dict) -> NamespaceDetail:
    """The namespace and everything the body nests in it, in one transaction."""
    from cirrus.storage import metadef_items

    for assoc in body.get("resource_type_associations", []):
        check_resource_type(assoc["name"])

    def work(s: Session) -> NamespaceDetail:
        name = body["namespace"]
        if s.scalar(select(MetadefNamespace.id).where(MetadefNamespace.namespace == name)):
            raise _duplicate(name)
        now = utcnow()
        ns = MetadefNamespace(id=str(uuid.uuid4()), namespace=name,
                              display_name=body.get("display_name"),
                              description=body.get("description"),
                              visibility=body.get("visibility", "private"),
                              protected=body.get("protected", False),
                              owner=body.get("owner") or ctx.project_id,
                              created_at=now, updated_at=now)
        s.add(ns)
        s.flush()
        seen: set[str] = set()
        for assoc in body.get("resource_type_associations", []):
            if assoc["name"] in seen:
                raise Conflict(f"Resource type {assoc['name']} is associated twice.")
            seen.add(assoc["name"])
            s.add(MetadefResourceTypeAssociation(
                namespace_id=ns.id, resource_type=assoc["name"], prefix=assoc.get("prefix"),
                properties_target=assoc.get("properties_target"), created_at=now,
                updated_at=now))
        for obj in body.get("objects", []):
            metadef_items.add_object(s, ns, obj)
        for prop_name, prop in body.get("properties", {}).items():
            metadef_items.add_property(s, ns, {**prop, "name": prop_name})
        for tag in body.get("tags", []):
            metadef_items.add_tag(s, ns, tag["name"])
        s.flush()
        return NamespaceDetail(ns, _associations(s, ns.id), _in(s, MetadefObject, ns.id),
                               _in(s, MetadefProperty, ns.id), _in(s, MetadefTag, ns.id))

    try:
        return db.run(work)
    except IntegrityError as exc:
        raise Conflict(f"Metadata definitions conflict in namespace {body['namespace']}: "
                       "a name is used twice.") from exc


def update_namespace(db: Database, ctx: RequestContext, name: str,
                     body: dict) -> NamespaceDetail:
    """Replace the namespace's own fields (a new `namespace` renames it)."""

    def work(s: Session) -> NamespaceDetail:
        ns = visible_namespace(s, ctx, name)
        new_name = body["namespace"]
        if new_name != ns.namespace and s.scalar(
                select(MetadefNamespace.id).where(MetadefNamespace.namespace == new_name)):
            raise _duplicate(new_name)
        ns.namespace = new_name
        ns.display_name = body.get("display_name")
        ns.description = body.get("description")
        ns.visibility = body.get("visibility", ns.visibility)
        ns.protected = body.get("protected", ns.protected)
        if body.get("owner"):
            ns.owner = body["owner"]
        ns.updated_at = utcnow()
        s.flush()
        return NamespaceDetail(ns, _associations(s, ns.id))

    try:
        return db.run(work)
    except IntegrityError as exc:
        raise _duplicate(body["namespace"]) from exc


def delete_namespace(db: Database, ctx: RequestContext, name: str) -> None:
    def work(s: Session) -> None:
        ns = visible_namespace(s, ctx, name)
        if ns.protected:
            raise Forbidden(f"Namespace {name} is protected and cannot be deleted.")
        for model in (MetadefObject, MetadefProperty, MetadefTag,
                      MetadefResourceTypeAssociation):
            s.execute(delete(model).where(model.namespace_id == ns.id))
        s.delete(ns)

    db.run(work)


def list_associations(db: Database, ctx: RequestContext,
                      name: str) -> list[MetadefResourceTypeAssociation]:
    with db.reader() as s:
        return _associations(s, visible_namespace(s, ctx, name).id)


def add_association(db: Database, ctx: RequestContext, name: str,
                    body: dict) -> MetadefResourceTypeAssociation:
    check_resource_type(body["name"])

    def work(s: Session) -> MetadefResourceTypeAssociation:
        ns = visible_namespace(s, ctx, name)
        if s.get(MetadefResourceTypeAssociation, (ns.id, body["name"])) is not None:
            raise Conflict(f"Resource type {body['name']} is already associated with "
                           f"namespace {name}.")
        now = utcnow()
        assoc = MetadefResourceTypeAssociation(
            namespace_id=ns.id, resource_type=body["name"], prefix=body.get("prefix"),
            properties_target=body.get("properties_target"), created_at=now, updated_at=now)
        s.add(assoc)
        s.flush()
        return assoc

    try:
        return db.run(work)
    except IntegrityError as exc:
        raise Conflict(f"Resource type {body['name']} is already associated with "
                       f"namespace {name}.") from exc


def remove_association(db: Database, ctx: RequestContext, name: str,
                       resource_type: str) -> None:
    def work(s: Session) -> None:
        ns = visible_namespace(s, ctx, name)
        assoc = s.get(MetadefResourceTypeAssociation, (ns.id, resource_type))
        if assoc is None:
            raise NotFound(f"Resource type {resource_type} is not associated with "
                           f"namespace {name}.")
        check_unprotected(ns, f"removing resource type {resource_type}")
        s.delete(assoc)

    db.run(work)


def check_sort(sort_key: str, sort_dir: str) -> None:
    if sort_key not in SORT_KEYS:
        raise BadRequest(f"Invalid input for field/attribute sort_key. Value: {sort_key}. "
                         f"It must be one of: {', '.join(SORT_KEYS)}.")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid input for field/attribute sort_dir. Value: {sort_dir}. "
                         "It must be asc or desc.")
