"""Servers: create, list, show, update, delete, metadata."""

from __future__ import annotations

import base64
import binascii

from cirrus.api.compute import schemas_servers as schemas
from cirrus.api.compute.common import bounded_int, next_links
from cirrus.api.compute.microversion import Since
from cirrus.api.compute.server_filters import list_filters
from cirrus.api.compute.views import HOST_STATUS, server_brief, server_detail
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import to_bool, validate
from cirrus.compute import actions, block_devices, creation, instances, networking, states
from cirrus.compute import volumes as server_volumes
from cirrus.errors import BadRequest
from cirrus.hosts import liveness
from cirrus.identity.policy import ADMIN, READ, WRITE, authorize

# Request fields by microversion: the versions that accept a field, and those that require it.
CREATE_ACCEPTS = {"description": Since("2.19"), "tags": Since("2.52"),
                  "personality": Since("2.1", until="2.56"),
                  "trusted_image_certificates": Since("2.63"),
                  "host": Since("2.74"), "hypervisor_hostname": Since("2.74"),
                  "hostname": Since("2.90")}
CREATE_REQUIRES = {"networks": Since("2.37")}
# 2.75: PUT answers with the full view of GET.
FULL_UPDATE_VIEW = Since("2.75")
# Block device mapping v2 fields by microversion (issue 15).
BDM_TAG = Since("2.42")
BDM_VOLUME_TYPE = Since("2.67")
UPDATE_ACCEPTS = {"description": Since("2.19"), "hostname": Since("2.90")}


def _check_fields_by_version(req: ApiRequest, server: dict, accepts: dict[str, Since],
                             requires: dict[str, Since] | None = None) -> None:
    for field, gate in accepts.items():
        if field in server and not gate(req):
            raise BadRequest(f"Invalid input for field/attribute server. Additional properties "
                             f"are not allowed ('{field}' was unexpected)")
    for field, gate in (requires or {}).items():
        if gate(req) and field not in server:
            raise BadRequest(f"Invalid input for field/attribute server. '{field}' is a "
                             "required property")


def create_server(req: ApiRequest) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:create")
    req.require_project()
    body = req.json
    validate(schemas.server_create, body)
    server = body["server"]
    _check_fields_by_version(req, server, CREATE_ACCEPTS, CREATE_REQUIRES)
    image_ref, bdms = _root_image(req, server)
    user_data = server.get("user_data")
    if user_data is not None:
        try:
            base64.b64decode(user_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("Invalid input for field/attribute user_data. Value: "
                             f"{user_data[:64]}. It is not base64 encoded.") from exc
    availability_zone, forced_host, forced_node = _parse_availability_zone(
        server.get("availability_zone"))
    if server.get("trusted_image_certificates"):
        raise BadRequest("Invalid input for field/attribute trusted_image_certificates: image "
                         "signature certificate validation is not supported by this cloud.")
    if server.get("host") or server.get("hypervisor_hostname"):
        # 2.74: a requested destination, admins only (Nova's
        # compute:servers:create:requested_destination).
        authorize(req.ctx, ADMIN, "compute:servers:create:requested_destination")
        forced_host = server.get("host") or forced_host
        forced_node = server.get("hypervisor_hostname") or forced_node
    if forced_host or forced_node:
        # Nova's os_compute_api:servers:create:forced_host: admins only.
        authorize(req.ctx, ADMIN, "os_compute_api:servers:create:forced_host")
    networks = server.get("networks", "auto")
    min_count = bounded_int(server.get("min_count", 1), "server/min_count", 1)
    max_count = bounded_int(server.get("max_count", min_count), "server/max_count", 1)
    if server.get("hostname") and max_count > 1:
        raise BadRequest("Invalid input for field/attribute hostname: a hostname cannot be "
                         "given to several servers at once.")
    request = creation.CreateRequest(
        name=server["name"], flavor_ref=str(server["flavorRef"]), image_ref=image_ref,
        networks=networks, min_count=min_count, max_count=max_count,
        key_name=server.get("key_name"), metadata=server.get("metadata", {}), user_data=user_data,
        availability_zone=availability_zone, forced_host=forced_host, forced_node=forced_node,
        description=server.get("description"),
        hostname=server.get("hostname"),
        tags=server.get("tags", []),
        security_groups=[g["name"] for g in server.get("security_groups", [])] or ["default"],
        config_drive=to_bool(server.get("config_drive", False)),
        access_ip_v4=server.get("accessIPv4"), access_ip_v6=server.get("accessIPv6"),
        admin_pass=server.get("adminPass") or _generated_password(),
        injected_files=_personality(server.get("personality") or []),
        block_devices=bdms,
    )
    created, reservation_id = creation.create(req.cloud, req.ctx, request)
    if to_bool(server.get("return_reservation_id", False)):
        return Reply(202, {"reservation_id": reservation_id})
    first = created[0]
    view = {**server_brief(req, first), "OS-DCF:diskConfig": server.get("OS-DCF:diskConfig", "MANUAL"),
            "security_groups": [{"name": n} for n in first.security_groups or ["default"]],
            "adminPass": request.admin_pass}
    del view["name"]
    return Reply(202, {"server": view}, {"Location": view["links"][0]["href"]})


def _parse_availability_zone(value: str | None) -> tuple[str | None, str | None, str | None]:
    """Nova's legacy forced destination: "AZ:HOST", "AZ::NODE" or "AZ:HOST:NODE" ->
    (zone, host, node); a plain zone -> (zone, None, None). An empty zone is the default."""
    host = node = None
    if value and ":" in value:
        parts = value.count(":")
        if parts == 1:
            value, host = value.split(":")
        elif parts == 2 and "::" in value:
            value, node = value.split("::")
        elif parts == 2:
            value, host, node = value.split(":")
        else:
            raise BadRequest("Unable to parse availability_zone")
    return value or None, host or None, node or None


def _root_image(req: ApiRequest, server: dict) -> tuple[str | None, list[dict]]:
    """The image of a local root disk (imageRef, or the CLI's image mapping to a local root)
    or None when booting from a volume, and the mappings that become volumes (issue 15)."""
    bdms = block_devices.parse(server, volume_type_ok=BDM_VOLUME_TYPE(req),
                               tag_ok=BDM_TAG(req))
    image_ref = server.get("imageRef") or None
    if image_ref:
        image_ref = str(image_ref).rstrip("/").rsplit("/", 1)[-1]
    return block_devices.root_image(image_ref, bdms)


def _generated_password() -> str:
    import secrets

    return secrets.token_urlsafe(9)


def _personality(files: list[dict]) -> list[tuple[str, bytes]]:
    """Nova's personality (before 2.57): [{path, contents (base64)}] -> [(path, bytes)]; the
    quotas on their number and sizes are checked with the project's limits."""
    decoded = []
    for item in files:
        try:
            data = base64.b64decode(item["contents"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"Personality content for {item['path']} cannot be decoded") from exc
        decoded.append((item["path"], data))
    return decoded


def _next_link(req: ApiRequest, rows: list, f: instances.ListFilters, collection: str) -> list[dict]:
    return next_links(req, collection, len(rows), rows[-1].uuid if rows else None, f.limit or 0)


def _host_statuses(req: ApiRequest, s, rows: list) -> dict[str, str]:
    if not (req.ctx.is_admin and HOST_STATUS(req)):
        return {}
    hosts = {r.host for r in rows if r.host}
    if not hosts:
        return {}
    return liveness.host_statuses(s, hosts, req.cloud.settings.service_down_time)


def list_servers(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "os_compute_api:servers:index")
    f = list_filters(req)
    with req.cloud.db.reader() as s:
        rows = [] if f.status == "__none__" else instances.list_(s, req.ctx, f)
    body: dict = {"servers": [server_brief(req, r) for r in rows]}
    next_links = _next_link(req, rows, f, "servers")
    if next_links:
        body["servers_links"] = next_links
    return body


def list_servers_detail(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "os_compute_api:servers:detail")
    f = list_filters(req)
    with req.cloud.db.reader() as s:
        rows = [] if f.status == "__none__" else instances.list_(s, req.ctx, f)
        faults = actions.latest_faults(s, [r.uuid for r in rows if r.vm_state == states.ERROR])
        host_status = _host_statuses(req, s, rows)
        addresses = networking.addresses(s, rows)
        attached = server_volumes.attached(s, [r.uuid for r in rows])  # issue 15
        servers = [server_detail(req, r, faults.get(r.uuid), host_status.get(r.host or "", "UNKNOWN"),
                                 addresses=addresses.get(r.uuid), listed=True,
                                 volumes=attached.get(r.uuid))
                   for r in rows]
    body: dict = {"servers": servers}
    next_links = _next_link(req, rows, f, "servers/detail")
    if next_links:
        body["servers_links"] = next_links
    return body


def show_server(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:servers:show")
    return _server_view(req, server_id, extended=True)


def _server_view(req: ApiRequest, server_id: str, *, extended: bool) -> dict:
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        fault = actions.latest_faults(s, [inst.uuid]).get(inst.uuid) if inst.vm_state == states.ERROR else None
        host_status = (_host_statuses(req, s, [inst]).get(inst.host or "", "UNKNOWN")
                       if extended else None)
        addresses = networking.addresses(s, [inst]).get(inst.uuid)
        attached = server_volumes.attached(s, [inst.uuid])[inst.uuid]  # issue 15
        return {"server": server_detail(req, inst, fault, host_status, extended=extended,
                                        addresses=addresses, volumes=attached)}


def update_server(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:servers:update")
    body = req.json
    validate(schemas.server_update, body)
    server = body["server"]
    _check_fields_by_version(req, server, UPDATE_ACCEPTS)
    values = {}
    if "name" in server:
        values["display_name"] = server["name"]
    if "description" in server:
        values["display_description"] = server["description"]
    if "accessIPv4" in server:
        values["access_ip_v4"] = server["accessIPv4"]
    if "accessIPv6" in server:
        values["access_ip_v6"] = server["accessIPv6"]
    if "hostname" in server:
        values["hostname"] = server["hostname"]
    instances.update_fields(req.cloud, req.ctx, server_id, values)
    # Until 2.75 Nova answers an update with the basic view, without extended attributes.
    return _server_view(req, server_id, extended=FULL_UPDATE_VIEW(req))


def delete_server(req: ApiRequest, server_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:servers:delete")
    instances.request_delete(req.cloud, req.ctx, server_id)
    return Reply(204)


# ---- metadata


def _read_metadata(req: ApiRequest, server_id: str) -> dict:
    with req.cloud.db.reader() as s:
        return dict(instances.get(s, req.ctx, server_id).metadata_items or {})


def list_metadata(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:server-metadata:index")
    return {"metadata": _read_metadata(req, server_id)}


def update_metadata(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:server-metadata:create")
    validate(schemas.metadata_body, req.json)
    return {"metadata": instances.set_metadata(req.cloud, req.ctx, server_id,
                                               req.json["metadata"], replace=False)}


def replace_metadata(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:server-metadata:update_all")
    validate(schemas.metadata_body, req.json)
    return {"metadata": instances.set_metadata(req.cloud, req.ctx, server_id,
                                               req.json["metadata"], replace=True)}


def show_metadata_item(req: ApiRequest, server_id: str, key: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:server-metadata:show")
    items = _read_metadata(req, server_id)
    if key not in items:
        from cirrus.errors import NotFound

        raise NotFound(f"Metadata item was not found: {key}")
    return {"meta": {key: items[key]}}


def set_metadata_item(req: ApiRequest, server_id: str, key: str) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:server-metadata:update")
    validate(schemas.metadata_item, req.json)
    meta = req.json["meta"]
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    instances.set_metadata(req.cloud, req.ctx, server_id, {key: meta[key]}, replace=False)
    return {"meta": {key: meta[key]}}


def delete_metadata_item(req: ApiRequest, server_id: str, key: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:server-metadata:delete")
    instances.set_metadata(req.cloud, req.ctx, server_id, {}, replace=False, delete_key=key)
    return Reply(204)



ROUTES = [
    ("POST", "/v2.1/servers", create_server),
    ("GET", "/v2.1/servers", list_servers),
    ("GET", "/v2.1/servers/detail", list_servers_detail),
    ("GET", "/v2.1/servers/{server_id}", show_server),
    ("PUT", "/v2.1/servers/{server_id}", update_server),
    ("DELETE", "/v2.1/servers/{server_id}", delete_server),
    ("GET", "/v2.1/servers/{server_id}/metadata", list_metadata),
    ("POST", "/v2.1/servers/{server_id}/metadata", update_metadata),
    ("PUT", "/v2.1/servers/{server_id}/metadata", replace_metadata),
    ("GET", "/v2.1/servers/{server_id}/metadata/{key}", show_metadata_item),
    ("PUT", "/v2.1/servers/{server_id}/metadata/{key}", set_metadata_item),
    ("DELETE", "/v2.1/servers/{server_id}/metadata/{key}", delete_metadata_item),
]
