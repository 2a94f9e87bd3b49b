"""What a metadata definition namespace holds: objects, properties and tags.

Every function finds the namespace as the caller sees it (metadefs.visible_namespace: another
project's private namespace is a 404); writes are for admins (the API checks the role).
Names are unique within a namespace (409 otherwise); deleting from a protected namespace is
refused (403).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.engine import Database
from cirrus.db.models import MetadefNamespace, MetadefObject, MetadefProperty, MetadefTag, utcnow
from cirrus.errors import Conflict, NotFound
from cirrus.storage.metadefs import check_unprotected, visible_namespace

KINDS: dict[str, Any] = {"object": MetadefObject, "property": MetadefProperty, "tag": MetadefTag}
MAX_TAGS_PER_REQUEST = 500


def _find(s: Session, kind: str, ns: MetadefNamespace, name: str) -> Any:
    model = KINDS[kind]
    return s.scalar(select(model).where(model.namespace_id == ns.id, model.name == name))


def _get(s: Session, kind: str, ns: MetadefNamespace, name: str) -> Any:
    item = _find(s, kind, ns, name)
    if item is None:
        raise NotFound(f"Metadata definition {kind}={name} was not found in "
                       f"namespace={ns.namespace}.")
    return item


def _taken(s: Session, kind: str, ns: MetadefNamespace, name: str) -> None:
    if _find(s, kind, ns, name) is not None:
        raise Conflict(f"A metadata definition {kind} with name={name} already exists in "
                       f"namespace={ns.namespace}.")


def _split_property(body: dict) -> tuple[str, dict]:
    return body["name"], {k: v for k, v in body.items() if k != "name"}


def add_object(s: Session, ns: MetadefNamespace, body: dict) -> MetadefObject:
    _taken(s, "object", ns, body["name"])
    now = utcnow()
    obj = MetadefObject(id=str(uuid.uuid4()), namespace_id=ns.id, name=body["name"],
                        description=body.get("description"),
                        required=list(body.get("required", [])),
                        properties=dict(body.get("properties", {})),
                        created_at=now, updated_at=now)
    s.add(obj)
    s.flush()
    return obj


def add_property(s: Session, ns: MetadefNamespace, body: dict) -> MetadefProperty:
    name, schema = _split_property(body)
    _taken(s, "property", ns, name)
    now = utcnow()
    prop = MetadefProperty(id=str(uuid.uuid4()), namespace_id=ns.id, name=name,
                           json_schema=schema, created_at=now, updated_at=now)
    s.add(prop)
    s.flush()
    return prop


def add_tag(s: Session, ns: MetadefNamespace, name: str) -> MetadefTag:
    _taken(s, "tag", ns, name)
    now = utcnow()
    tag = MetadefTag(id=str(uuid.uuid4()), namespace_id=ns.id, name=name, created_at=now,
                     updated_at=now)
    s.add(tag)
    s.flush()
    return tag


def list_items(db: Database, ctx: RequestContext, kind: str, namespace: str) -> list:
    model = KINDS[kind]
    with db.reader() as s:
        ns = visible_namespace(s, ctx, namespace)
        return list(s.scalars(select(model).where(model.namespace_id == ns.id)
                              .order_by(model.created_at, model.name)))


def get_item(db: Database, ctx: RequestContext, kind: str, namespace: str, name: str) -> Any:
    with db.reader() as s:
        return _get(s, kind, visible_namespace(s, ctx, namespace), name)


def _run(db: Database, work: Any, kind: str, name: str) -> Any:
    try:
        return db.run(work)
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"A metadata definition {kind} with name={name} already exists.") \
            from exc


def create_item(db: Database, ctx: RequestContext, kind: str, namespace: str,
                body: dict) -> Any:
    """An object or property (body validated by the API) or a tag (body {"name": ...})."""
    adders = {"object": add_object, "property": add_property,
              "tag": lambda s, ns, b: add_tag(s, ns, b["name"])}

    def work(s: Session) -> Any:
        return adders[kind](s, visible_namespace(s, ctx, namespace), body)

    return _run(db, work, kind, body["name"])


def update_item(db: Database, ctx: RequestContext, kind: str, namespace: str, name: str,
                body: dict) -> Any:
    """Replace the item by the body (a new `name` renames it)."""

    def work(s: Session) -> Any:
        ns = visible_namespace(s, ctx, namespace)
        item = _get(s, kind, ns, name)
        if body["name"] != name:
            _taken(s, kind, ns, body["name"])
        item.name = body["name"]
        if kind == "object":
            item.description = body.get("description")
            item.required = list(body.get("required", []))
            item.properties = dict(body.get("properties", {}))
        elif kind == "property":
            item.json_schema = _split_property(body)[1]
        item.updated_at = utcnow()
        s.flush()
        return item

    return _run(db, work, kind, body["name"])


def delete_item(db: Database, ctx: RequestContext, kind: str, namespace: str,
                name: str) -> None:
    def work(s: Session) -> None:
        ns = visible_namespace(s, ctx, namespace)
        item = _get(s, kind, ns, name)
        check_unprotected(ns, f"deleting {kind} {name}")
        s.delete(item)

    db.run(work)


def replace_tags(db: Database, ctx: RequestContext, namespace: str, names: list[str],
                 *, append: bool) -> list[MetadefTag]:
    """Glance's bulk create: the namespace's tags become `names` (or gain them, `append`)."""
    if len(set(names)) != len(names):
        raise Conflict("A tag name is given twice in the request.")

    def work(s: Session) -> list[MetadefTag]:
        ns = visible_namespace(s, ctx, namespace)
        if not append:
            s.execute(delete(MetadefTag).where(MetadefTag.namespace_id == ns.id))
            s.flush()
        return [add_tag(s, ns, name) for name in names]

    return _run(db, work, "tag", ", ".join(names))


def delete_tags(db: Database, ctx: RequestContext, namespace: str) -> None:
    def work(s: Session) -> None:
        ns = visible_namespace(s, ctx, namespace)
        check_unprotected(ns, "deleting its tags")
        s.execute(delete(MetadefTag).where(MetadefTag.namespace_id == ns.id))

    db.run(work)
