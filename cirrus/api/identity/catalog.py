"""The service catalog, read-only: services, endpoints, regions."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest
from cirrus.api.identity.common import _authorize, _collection, _self_link
from cirrus.errors import NotFound
from cirrus.identity import catalog
from cirrus.identity.policy import ADMIN


def _service_view(req: ApiRequest, svc: catalog.Service) -> dict:
    return {"id": svc.id, "type": svc.type, "name": svc.name, "description": svc.description,
            "enabled": svc.enabled, "links": _self_link(req, "services", svc.id)}


def _endpoint_view(req: ApiRequest, ep: catalog.Endpoint) -> dict:
    return {"id": ep.id, "interface": ep.interface, "region": ep.region, "region_id": ep.region,
            "service_id": ep.service_id, "url": ep.url, "enabled": ep.enabled,
            "links": _self_link(req, "endpoints", ep.id)}


def _region_view(req: ApiRequest, region: catalog.Region) -> dict:
    return {"id": region.id, "description": region.description,
            "parent_region_id": region.parent_region_id,
            "links": _self_link(req, "regions", region.id)}


def list_services(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_services")
    found = [svc for svc in catalog.services(req.cloud.settings)
             if req.query.get("type", svc.type) == svc.type
             and req.query.get("name", svc.name) == svc.name]
    return _collection(req, "services", [_service_view(req, svc) for svc in found])


def show_service(req: ApiRequest, service_id: str) -> dict:
    _authorize(req, ADMIN, "get_service")
    for svc in catalog.services(req.cloud.settings):
        if svc.id == service_id:
            return {"service": _service_view(req, svc)}
    raise NotFound(f"Could not find service: {service_id}.")


def list_endpoints(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_endpoints")
    filters = {"interface": "interface", "service_id": "service_id", "region_id": "region"}
    found = [ep for ep in catalog.endpoints(req.cloud.settings)
             if all(req.query.get(q, getattr(ep, attr)) == getattr(ep, attr)
                    for q, attr in filters.items())]
    return _collection(req, "endpoints", [_endpoint_view(req, ep) for ep in found])


def show_endpoint(req: ApiRequest, endpoint_id: str) -> dict:
    _authorize(req, ADMIN, "get_endpoint")
    for ep in catalog.endpoints(req.cloud.settings):
        if ep.id == endpoint_id:
            return {"endpoint": _endpoint_view(req, ep)}
    raise NotFound(f"Could not find endpoint: {endpoint_id}.")


def list_regions(req: ApiRequest) -> dict:
    return _collection(req, "regions", [_region_view(req, r)
                                        for r in catalog.regions(req.cloud.settings)])


def show_region(req: ApiRequest, region_id: str) -> dict:
    for region in catalog.regions(req.cloud.settings):
        if region.id == region_id:
            return {"region": _region_view(req, region)}
    raise NotFound(f"Could not find region: {region_id}.")


ROUTES: list = [
    ("GET", "/v3/services", list_services),
    ("GET", "/v3/services/{service_id}", show_service),
    ("GET", "/v3/endpoints", list_endpoints),
    ("GET", "/v3/endpoints/{endpoint_id}", show_endpoint),
    ("GET", "/v3/regions", list_regions),
    ("GET", "/v3/regions/{region_id}", show_region),
]
