"""Tags on networks, subnets, ports, routers, floating IPs and subnet pools (Neutron's
standard-attr-tag): /v2.0/{networks|subnets|ports|routers|floatingips|subnetpools}/{id}/tags[/{tag}], which
`openstack ... --tag` uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.network import schemas
from cirrus.context import RequestContext
from cirrus.errors import NotFound
from cirrus.network import floating_ips, networks, ports, routers, subnetpools, subnets
from cirrus.network.access import READ, require, require_owner

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

Getter = Callable[["Session", RequestContext, str], Any]
GETTERS: dict[str, Getter] = {"networks": networks.get_network, "subnets": subnets.get_subnet,
                              "ports": ports.get_port, "routers": routers.get_router,
                              "floatingips": floating_ips.get_floatingip,
                              "subnetpools": subnetpools.get_subnetpool}


def _read(req: ApiRequest, collection: str, resource_id: str) -> list[str]:
    require(req.ctx, READ, f"get_{collection[:-1]}")
    with req.cloud.db.reader() as s:
        return list(GETTERS[collection](s, req.ctx, resource_id).tags or [])


def _change(req: ApiRequest, collection: str, resource_id: str,
            change: Callable[[list[str]], list[str]]) -> list[str]:
    def work(s: Session) -> list[str]:
        record = GETTERS[collection](s, req.ctx, resource_id)
        require_owner(req.ctx, record.project_id, f"update_{collection[:-1]}:tags")
        record.tags = change(list(record.tags or []))
        record.revision_number += 1
        return list(record.tags)

    return req.cloud.db.run(work)


def _tags_body(req: ApiRequest) -> list[str]:
    body = req.json
    schemas.check(schemas.TAGS_BODY, body)
    return list(dict.fromkeys(body["tags"]))


def _check_tag(tag: str) -> str:
    schemas.check(schemas.TAGS_BODY, {"tags": [tag]})
    return tag


def _handlers(collection: str) -> list[tuple]:
    def show_all(req: ApiRequest, resource_id: str) -> dict:
        return {"tags": _read(req, collection, resource_id)}

    def replace_all(req: ApiRequest, resource_id: str) -> dict:
        tags = _tags_body(req)
        return {"tags": _change(req, collection, resource_id, lambda _: tags)}

    def add_many(req: ApiRequest, resource_id: str) -> Reply:
        tags = _tags_body(req)
        new = _change(req, collection, resource_id,
                      lambda old: list(dict.fromkeys([*old, *tags])))
        return Reply(201, {"tags": new})

    def delete_all(req: ApiRequest, resource_id: str) -> Reply:
        _change(req, collection, resource_id, lambda _: [])
        return Reply(204)

    def check_one(req: ApiRequest, resource_id: str, tag: str) -> Reply:
        if tag not in _read(req, collection, resource_id):
            raise NotFound(f"Tag {tag} could not be found for {collection[:-1]} {resource_id}.")
        return Reply(204)

    def add_one(req: ApiRequest, resource_id: str, tag: str) -> Reply:
        _check_tag(tag)
        _change(req, collection, resource_id, lambda old: old if tag in old else [*old, tag])
        return Reply(201)

    def delete_one(req: ApiRequest, resource_id: str, tag: str) -> Reply:
        def drop(old: list[str]) -> list[str]:
            if tag not in old:
                raise NotFound(f"Tag {tag} could not be found for {collection[:-1]} "
                               f"{resource_id}.")
            return [t for t in old if t != tag]

        _change(req, collection, resource_id, drop)
        return Reply(204)

    base = f"/v2.0/{collection}/{{resource_id}}/tags"
    return [("GET", base, show_all), ("PUT", base, replace_all), ("POST", base, add_many),
            ("DELETE", base, delete_all), ("GET", f"{base}/{{tag}}", check_one),
            ("PUT", f"{base}/{{tag}}", add_one), ("DELETE", f"{base}/{{tag}}", delete_one)]


ROUTES = [row for collection in GETTERS for row in _handlers(collection)]
