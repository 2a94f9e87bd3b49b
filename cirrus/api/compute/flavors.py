"""Flavors, their extra specs and access to private flavors (Nova v2.1 up to 2.60).

Microversions: 2.7 refuses access grants on public flavors (409); 2.55 adds `description`
to every flavor view and PUT /flavors/{id} to change it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.api.compute import schemas_misc as schemas
from cirrus.api.compute.common import (
    available,
    int_query,
    next_links,
    page_limit_and_marker,
    query_bool,
)
from cirrus.api.compute.microversion import Since, by_version
from cirrus.api.compute.views import links
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import to_bool, validate
from cirrus.compute import flavors as service
from cirrus.compute.quotas import verify_project
from cirrus.errors import BadRequest, Conflict, NotFound
from cirrus.identity.policy import ADMIN, READ, authorize

if TYPE_CHECKING:
    from cirrus.db.models import Flavor

DESCRIPTION = Since("2.55")  # a flavor's `description`
PUBLIC_ACCESS_CONFLICT = Since("2.7")  # adding access to a public flavor is a 409
EXTRA_SPECS_IN_BODY = Since("2.61")  # a flavor's detail shows its extra_specs
SWAP_ZERO = Since("2.75")  # no swap is 0, not ""
CREATE_SCHEMA = by_version({("2.1", "2.54"): schemas.flavor_create,
                            ("2.55", None): schemas.flavor_create_v255})

# ---------------------------------------------------------------- views


def _brief(req: ApiRequest, flavor: Flavor) -> dict[str, Any]:
    view: dict[str, Any] = {"id": flavor.flavorid, "name": flavor.name,
                            "links": links(req, "flavors", flavor.flavorid)}
    if DESCRIPTION(req):
        view["description"] = flavor.description
    return view


def _full(req: ApiRequest, flavor: Flavor) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": flavor.flavorid,
        "name": flavor.name,
        "ram": flavor.memory_mb,
        "disk": flavor.root_gb,
        "swap": flavor.swap or (0 if SWAP_ZERO(req) else ""),
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": flavor.disabled,
        "vcpus": flavor.vcpus,
        "os-flavor-access:is_public": flavor.is_public,
        "rxtx_factor": flavor.rxtx_factor,
        "links": links(req, "flavors", flavor.flavorid),
    }
    if DESCRIPTION(req):
        view["description"] = flavor.description
    if EXTRA_SPECS_IN_BODY(req):
        view["extra_specs"] = dict(flavor.extra_specs or {})
    return view


def _access_view(flavor: Flavor, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavor.flavorid, "tenant_id": p} for p in projects]}


# ---------------------------------------------------------------- list and show


def _parse_is_public(raw: str | None) -> bool | None:
    if raw is None:
        return True
    if raw.strip().lower() == "none":
        return None
    return query_bool("is_public", raw)


def _int_filter(req: ApiRequest, name: str) -> int | None:
    """minRam/minDisk: an integer the database can compare (400 otherwise, as Nova's)."""
    return int_query(req, name, f"Invalid {name} filter [{req.query.get(name, '')[:64]}]")


def _query(req: ApiRequest) -> service.FlavorFilter:
    limit, marker = page_limit_and_marker(req)
    flt = service.FlavorFilter(
        sort_key=req.query.get("sort_key") or "flavorid",
        sort_dir=req.query.get("sort_dir") or "asc",
        min_memory_mb=_int_filter(req, "minRam"),
        min_root_gb=_int_filter(req, "minDisk"),
        limit=limit, marker=marker,
    )
    if req.ctx.is_admin:  # only admins may list private or disabled flavors
        flt.is_public = _parse_is_public(req.query.get("is_public"))
    else:
        flt.is_public = True
        flt.include_disabled = False
    return flt


def _list(req: ApiRequest, collection: str, view: Any) -> dict:
    authorize(req.ctx, READ)
    flt = _query(req)
    with req.cloud.db.reader() as s:
        flavors = service.list_flavors(s, req.ctx, flt)
        body: dict[str, Any] = {"flavors": [view(req, f) for f in flavors]}
    links = next_links(req, collection, len(flavors),
                       flavors[-1].flavorid if flavors else None, flt.limit or 0)
    if links:
        body["flavors_links"] = links
    return body


def list_flavors(req: ApiRequest) -> dict:
    return _list(req, "flavors", _brief)


def list_flavors_detail(req: ApiRequest) -> dict:
    return _list(req, "flavors/detail", _full)


def show_flavor(req: ApiRequest, flavor_id: str) -> dict:
    authorize(req.ctx, READ)
    with req.cloud.db.reader() as s:
        return {"flavor": _full(req, service.get_flavor(s, flavor_id, req.ctx))}


# ---------------------------------------------------------------- create, update, delete


def create_flavor(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-manage:create")
    body = req.json
    validate(CREATE_SCHEMA(req), body)
    spec = body["flavor"]

    def work(s):
        flavor = service.create_flavor(
            s, name=spec["name"], vcpus=spec["vcpus"], memory_mb=spec["ram"],
            root_gb=spec["disk"], ephemeral_gb=spec.get("OS-FLV-EXT-DATA:ephemeral", 0),
            swap=spec.get("swap", 0), rxtx_factor=spec.get("rxtx_factor", 1.0),
            is_public=to_bool(spec.get("os-flavor-access:is_public", True)),
            flavorid=spec.get("id"),
            description=spec.get("description") if DESCRIPTION(req) else None,
        )
        return {"flavor": _full(req, flavor)}

    return req.cloud.db.run(work)


@available("2.55")
def update_flavor(req: ApiRequest, flavor_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-manage:update")
    body = req.json
    validate(schemas.flavor_update, body)
    return req.cloud.db.run(lambda s: {"flavor": _full(req, service.update_description(
        s, flavor_id, body["flavor"]["description"], req.ctx))})


def delete_flavor(req: ApiRequest, flavor_id: str) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-manage:delete")
    req.cloud.db.run(lambda s: service.delete_flavor(s, flavor_id, req.ctx))
    return Reply(202)


# ---------------------------------------------------------------- extra specs


def list_extra_specs(req: ApiRequest, flavor_id: str) -> dict:
    authorize(req.ctx, READ)
    with req.cloud.db.reader() as s:
        return {"extra_specs": dict(service.get_flavor(s, flavor_id, req.ctx).extra_specs or {})}


def create_extra_specs(req: ApiRequest, flavor_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-extra-specs:create")
    body = req.json
    validate(schemas.extra_specs_create, body)
    req.cloud.db.run(lambda s: service.set_extra_specs(s, flavor_id, body["extra_specs"],
                                                       req.ctx))
    return body  # Nova answers with the request body as given


def show_extra_spec(req: ApiRequest, flavor_id: str, key: str) -> dict:
    authorize(req.ctx, READ)
    with req.cloud.db.reader() as s:
        specs = service.get_flavor(s, flavor_id, req.ctx).extra_specs or {}
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return {key: specs[key]}


def update_extra_spec(req: ApiRequest, flavor_id: str, key: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-extra-specs:update")
    body = req.json
    validate(schemas.extra_spec_update, body)
    if key not in body:
        raise BadRequest("Request body and URI mismatch")
    req.cloud.db.run(lambda s: service.set_extra_specs(s, flavor_id, body, req.ctx))
    return body


def delete_extra_spec(req: ApiRequest, flavor_id: str, key: str) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-extra-specs:delete")
    req.cloud.db.run(lambda s: service.delete_extra_spec(s, flavor_id, key, req.ctx))
    return Reply(200)  # Nova's status for this delete, with an empty body


# ---------------------------------------------------------------- access to private flavors


def list_access(req: ApiRequest, flavor_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-access")
    with req.cloud.db.reader() as s:
        flavor = service.get_flavor(s, flavor_id, req.ctx)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return _access_view(flavor, service.list_access(s, flavor))


def flavor_action(req: ApiRequest, flavor_id: str) -> dict:
    body = req.json
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Malformed request body: an action body holds exactly one action.")
    action = next(iter(body))
    if action == "addTenantAccess":
        return _add_tenant_access(req, flavor_id, body)
    if action == "removeTenantAccess":
        return _remove_tenant_access(req, flavor_id, body)
    raise BadRequest(f"There is no such action: {action}")


def _add_tenant_access(req: ApiRequest, flavor_id: str, body: dict) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-access:add_tenant_access")
    validate(schemas.add_tenant_access, body)
    tenant = body["addTenantAccess"]["tenant"]

    def work(s):
        verify_project(s, tenant)
        flavor = service.get_flavor(s, flavor_id, req.ctx)
        if flavor.is_public and PUBLIC_ACCESS_CONFLICT(req):
            raise Conflict("Can not add access to a public flavor.")
        service.add_access(s, flavor, tenant)
        return _access_view(flavor, service.list_access(s, flavor))

    return req.cloud.db.run(work)


def _remove_tenant_access(req: ApiRequest, flavor_id: str, body: dict) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-flavor-access:remove_tenant_access")
    validate(schemas.remove_tenant_access, body)
    tenant = body["removeTenantAccess"]["tenant"]

    def work(s):
        # The project may be gone already; its grant can still be removed.
        flavor = service.get_flavor(s, flavor_id, req.ctx)
        service.remove_access(s, flavor, tenant)
        return _access_view(flavor, service.list_access(s, flavor))

    return req.cloud.db.run(work)


ROUTES = [
    ("GET", "/v2.1/flavors", list_flavors),
    ("POST", "/v2.1/flavors", create_flavor),
    ("GET", "/v2.1/flavors/detail", list_flavors_detail),
    ("GET", "/v2.1/flavors/{flavor_id}", show_flavor),
    ("PUT", "/v2.1/flavors/{flavor_id}", update_flavor),
    ("DELETE", "/v2.1/flavors/{flavor_id}", delete_flavor),
    ("POST", "/v2.1/flavors/{flavor_id}/action", flavor_action),
    ("GET", "/v2.1/flavors/{flavor_id}/os-flavor-access", list_access),
    ("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs", list_extra_specs),
    ("POST", "/v2.1/flavors/{flavor_id}/os-extra_specs", create_extra_specs),
    ("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", show_extra_spec),
    ("PUT", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", update_extra_spec),
    ("DELETE", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", delete_extra_spec),
]
