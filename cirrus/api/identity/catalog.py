"""The service catalog: regions, services and endpoints (stored in the database; changes
show in tokens issued afterwards)."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import catalog_schemas as schemas
from cirrus.api.identity.common import _authorize, _body, _collection, _self_link
from cirrus.identity.policy import ADMIN
from cirrus.identity.service import catalog_admin as catalog


def _service_view(req: ApiRequest, svc: Any) -> dict:
    return {"id": svc.id, "type": svc.type, "name": svc.name, "description": svc.description,
            "enabled": svc.enabled, "links": _self_link(req, "services", svc.id)}


def _endpoint_view(req: ApiRequest, ep: Any) -> dict:
    return {"id": ep.id, "interface": ep.interface, "region": ep.region_id,
            "region_id": ep.region_id, "service_id": ep.service_id, "url": ep.url,
            "enabled": ep.enabled, "links": _self_link(req, "endpoints", ep.id)}


def _region_view(req: ApiRequest, region: Any) -> dict:
    return {"id": region.id, "description": region.description,
            "parent_region_id": region.parent_region_id,
            "links": _self_link(req, "regions", region.id)}


def _write(req: ApiRequest, work: Any) -> Any:
    result = req.cloud.db.run(work)
    catalog.catalog_changed(req.cloud.db)
    return result


# ---------------------------------------------------------------- services


def list_services(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_services")
    with req.cloud.db.reader() as s:
        found = catalog.list_services(s, type=req.query.get("type"), name=req.query.get("name"))
    return _collection(req, "services", [_service_view(req, svc) for svc in found])


def show_service(req: ApiRequest, service_id: str) -> dict:
    _authorize(req, ADMIN, "get_service")
    with req.cloud.db.reader() as s:
        return {"service": _service_view(req, catalog.get_service(s, service_id))}


def create_service(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_service")
    fields = _body(req, schemas.service_create, "service")
    svc = _write(req, lambda s: catalog.create_service(s, fields))
    return Reply(201, {"service": _service_view(req, svc)})


def update_service(req: ApiRequest, service_id: str) -> dict:
    _authorize(req, ADMIN, "update_service")
    fields = _body(req, schemas.service_update, "service")
    svc = _write(req, lambda s: catalog.update_service(s, service_id, fields))
    return {"service": _service_view(req, svc)}


def delete_service(req: ApiRequest, service_id: str) -> None:
    _authorize(req, ADMIN, "delete_service")
    _write(req, lambda s: catalog.delete_service(s, service_id))


# ---------------------------------------------------------------- endpoints


def list_endpoints(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_endpoints")
    with req.cloud.db.reader() as s:
        found = catalog.list_endpoints(s, interface=req.query.get("interface"),
                                       service_id=req.query.get("service_id"),
                                       region_id=req.query.get("region_id"))
    return _collection(req, "endpoints", [_endpoint_view(req, ep) for ep in found])


def show_endpoint(req: ApiRequest, endpoint_id: str) -> dict:
    _authorize(req, ADMIN, "get_endpoint")
    with req.cloud.db.reader() as s:
        return {"endpoint": _endpoint_view(req, catalog.get_endpoint(s, endpoint_id))}


def create_endpoint(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_endpoint")
    fields = _body(req, schemas.endpoint_create, "endpoint")
    ep = _write(req, lambda s: catalog.create_endpoint(s, fields))
    return Reply(201, {"endpoint": _endpoint_view(req, ep)})


def update_endpoint(req: ApiRequest, endpoint_id: str) -> dict:
    _authorize(req, ADMIN, "update_endpoint")
    fields = _body(req, schemas.endpoint_update, "endpoint")
    ep = _write(req, lambda s: catalog.update_endpoint(s, endpoint_id, fields))
    return {"endpoint": _endpoint_view(req, ep)}


def delete_endpoint(req: ApiRequest, endpoint_id: str) -> None:
    _authorize(req, ADMIN, "delete_endpoint")
    _write(req, lambda s: catalog.delete_endpoint(s, endpoint_id))


# ---------------------------------------------------------------- regions (anyone may read)


def list_regions(req: ApiRequest) -> dict:
    with req.cloud.db.reader() as s:
        found = catalog.list_regions(s, req.query.get("parent_region_id"))
    return _collection(req, "regions", [_region_view(req, r) for r in found])


def show_region(req: ApiRequest, region_id: str) -> dict:
    with req.cloud.db.reader() as s:
        return {"region": _region_view(req, catalog.get_region(s, region_id))}


def create_region(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_region")
    fields = _body(req, schemas.region_create, "region")
    region = _write(req, lambda s: catalog.create_region(s, fields))
    return Reply(201, {"region": _region_view(req, region)})


def create_region_with_id(req: ApiRequest, region_id: str) -> Reply:
    _authorize(req, ADMIN, "create_region")
    fields = _body(req, schemas.region_create, "region")
    region = _write(req, lambda s: catalog.create_region(s, fields, region_id))
    return Reply(201, {"region": _region_view(req, region)})


def update_region(req: ApiRequest, region_id: str) -> dict:
    _authorize(req, ADMIN, "update_region")
    fields = _body(req, schemas.region_update, "region")
    region = _write(req, lambda s: catalog.update_region(s, region_id, fields))
    return {"region": _region_view(req, region)}


def delete_region(req: ApiRequest, region_id: str) -> None:
    _authorize(req, ADMIN, "delete_region")
    _write(req, lambda s: catalog.delete_region(s, region_id))


ROUTES: list = [
    ("GET", "/v3/services", list_services),
    ("POST", "/v3/services", create_service),
    ("GET", "/v3/services/{service_id}", show_service),
    ("PATCH", "/v3/services/{service_id}", update_service),
    ("DELETE", "/v3/services/{service_id}", delete_service),
    ("GET", "/v3/endpoints", list_endpoints),
    ("POST", "/v3/endpoints", create_endpoint),
    ("GET", "/v3/endpoints/{endpoint_id}", show_endpoint),
    ("PATCH", "/v3/endpoints/{endpoint_id}", update_endpoint),
    ("DELETE", "/v3/endpoints/{endpoint_id}", delete_endpoint),
    ("GET", "/v3/regions", list_regions),
    ("POST", "/v3/regions", create_region),
    ("GET", "/v3/regions/{region_id}", show_region),
    ("PUT", "/v3/regions/{region_id}", create_region_with_id),
    ("PATCH", "/v3/regions/{region_id}", update_region),
    ("DELETE", "/v3/regions/{region_id}", delete_region),
]
