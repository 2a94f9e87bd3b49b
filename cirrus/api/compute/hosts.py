"""Availability zones, hypervisors and services (Nova v2.1 up to 2.60). Admin only, except
the plain availability-zone list.

Microversions: 2.11 shows and sets services' `forced_down`; 2.28 gives hypervisors'
`cpu_info` as an object (a JSON string before); 2.33 pages hypervisor lists; 2.53 replaces
integer ids of hypervisors and services with UUIDs, moves hypervisor search into
`?hypervisor_hostname_pattern=` and `?with_servers=`, and updates a service with
PUT /os-services/{uuid} instead of the enable/disable/force-down actions.
"""

from __future__ import annotations

import json
import logging
import uuid as uuidlib
from typing import Any

from cirrus.agent.rpcapi import AgentAPI
from cirrus.api.compute import schemas_misc as schemas
from cirrus.api.compute.common import (
    available,
    next_links,
    page_limit_and_marker,
    query_bool,
)
from cirrus.api.compute.microversion import Since, by_version
from cirrus.api.compute.views import iso_micro
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import to_bool, validate
from cirrus.db.models import ComputeNode, Service
from cirrus.errors import BadRequest, CirrusError, NotFound
from cirrus.hosts import records
from cirrus.hosts.liveness import AGENT_BINARY, service_is_up
from cirrus.hosts.zones import INTERNAL_ZONE, availability_zones, service_zone
from cirrus.identity.policy import ADMIN, READ, authorize

log = logging.getLogger(__name__)

# The microversion gates of this module (see the docstring above).
FORCED_DOWN = Since("2.11")  # services show forced_down; the force-down action
CPU_INFO_OBJECT = Since("2.28")  # hypervisors' cpu_info an object, not a JSON string
PAGED_HYPERVISORS = Since("2.33")  # limit/marker on hypervisor lists
UUID_IDS = Since("2.53")  # UUIDs for hypervisors and services; PUT /os-services/{uuid}
SERVICE_ACTION_SCHEMA = by_version({("2.1", "2.10"): schemas.service_action,
                                    ("2.11", None): schemas.service_action_v211})


class NotImplementedHere(CirrusError):
    status = 501
    default_message = "The requested functionality is not supported."


def _is_uuid(value: str) -> bool:
    try:
        uuidlib.UUID(value)
    except ValueError:
        return False
    return True


def _only_params(req: ApiRequest, allowed: set[str]) -> None:
    """From 2.53 the hypervisor routes refuse query parameters they do not know."""
    unknown = sorted(set(req.query.keys()) - allowed)
    if unknown:
        raise BadRequest("Invalid input for query parameters. Additional properties are not "
                         f"allowed ({', '.join(repr(k) for k in unknown)} was unexpected)")


# ---------------------------------------------------------------- availability zones


def list_zones(req: ApiRequest) -> dict:
    authorize(req.ctx, READ)
    with req.cloud.db.reader() as s:
        zones = availability_zones(s, req.cloud.settings)
    return {"availabilityZoneInfo": [
        {"zoneName": z.name, "zoneState": {"available": z.available}, "hosts": None}
        for z in zones if z.name != INTERNAL_ZONE]}


def list_zones_detail(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-availability-zone:detail")
    with req.cloud.db.reader() as s:
        zones = availability_zones(s, req.cloud.settings)
    info = []
    for z in zones:
        hosts = None
        if z.available:
            hosts = {host: {binary: {**state, "updated_at": iso_micro(state["updated_at"])}
                            for binary, state in binaries.items()}
                     for host, binaries in z.hosts.items()}
        info.append({"zoneName": z.name, "zoneState": {"available": z.available},
                     "hosts": hosts})
    return {"availabilityZoneInfo": info}


# ---------------------------------------------------------------- hypervisors


def _hypervisor(req: ApiRequest, node: ComputeNode, svc: Service, *, detail: bool,
                servers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    uuids = UUID_IDS(req)
    view: dict[str, Any] = {
        "id": node.uuid if uuids else node.id,
        "hypervisor_hostname": node.hypervisor_hostname,
        "state": "up" if service_is_up(svc, req.cloud.settings.service_down_time) else "down",
        "status": "disabled" if svc.disabled else "enabled",
    }
    if detail:
        free_disk = node.local_gb - node.local_gb_used
        view.update({
            "hypervisor_type": node.hypervisor_type,
            "hypervisor_version": node.hypervisor_version,
            "host_ip": node.host_ip,
            "service": {"id": svc.uuid if uuids else svc.id, "host": node.host,
                        "disabled_reason": svc.disabled_reason},
            "vcpus": node.vcpus,
            "memory_mb": node.memory_mb,
            "local_gb": node.local_gb,
            "vcpus_used": node.vcpus_used,
            "memory_mb_used": node.memory_mb_used,
            "local_gb_used": node.local_gb_used,
            "free_ram_mb": node.memory_mb - node.memory_mb_used,
            "free_disk_gb": free_disk,
            "current_workload": 0,
            "running_vms": node.running_vms,
            "disk_available_least": free_disk,
        })
        cpu_info = node.cpu_info or {}
        view["cpu_info"] = cpu_info if CPU_INFO_OBJECT(req) else (
            json.dumps(cpu_info) if cpu_info else "")
    if servers:
        view["servers"] = [{"name": name, "uuid": uuid} for uuid, name in servers]
    return view


def _list_hypervisors(req: ApiRequest, *, detail: bool) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hypervisors:list")
    limit: int | None = None
    marker: str | None = None
    pattern: str | None = None
    with_servers = False
    if UUID_IDS(req):
        _only_params(req, {"limit", "marker", "hypervisor_hostname_pattern", "with_servers"})
        pattern = req.query.get("hypervisor_hostname_pattern")
        with_servers = query_bool("with_servers", req.query.get("with_servers", "false"))
    paged = PAGED_HYPERVISORS(req) and pattern is None
    if pattern is not None and ("limit" in req.query or "marker" in req.query):
        raise BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern query "
                         "parameter is not supported.")
    if paged:
        limit, marker = page_limit_and_marker(req)
    with req.cloud.db.reader() as s:
        nodes = records.list_compute_nodes(s, limit=limit, marker=marker,
                                           marker_is_uuid=UUID_IDS(req),
                                           hostname_pattern=pattern)
        if pattern is not None and not nodes:
            raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
        services = records.agent_services(s)
        views = []
        for node in nodes:
            svc = services.get(node.host)
            if svc is None:  # the agent's service was deleted; Nova skips such nodes too
                continue
            servers = records.instances_on_host(s, node.host) if with_servers else None
            views.append(_hypervisor(req, node, svc, detail=detail, servers=servers))
    body: dict[str, Any] = {"hypervisors": views}
    if paged and limit is not None:
        links = next_links(req, "os-hypervisors/detail" if detail else "os-hypervisors",
                           len(views), views[-1]["id"] if views else None, limit)
        if links:
            body["hypervisors_links"] = links
    return body


def list_hypervisors(req: ApiRequest) -> dict:
    return _list_hypervisors(req, detail=False)


def list_hypervisors_detail(req: ApiRequest) -> dict:
    return _list_hypervisors(req, detail=True)


def _node_and_service(req: ApiRequest, s: Any, hypervisor_id: str) -> tuple[ComputeNode, Service]:
    if UUID_IDS(req):
        if not _is_uuid(hypervisor_id):
            raise BadRequest(f"Invalid uuid {hypervisor_id}")
        node = records.get_compute_node(s, hypervisor_id, by_uuid=True)
    else:
        node = records.get_compute_node(s, hypervisor_id, by_uuid=False)
    svc = records.agent_services(s).get(node.host)
    if svc is None:
        raise NotFound(f"Hypervisor with ID '{hypervisor_id}' could not be found.")
    return node, svc


def show_hypervisor(req: ApiRequest, hypervisor_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hypervisors:show")
    with_servers = False
    if UUID_IDS(req):
        _only_params(req, {"with_servers"})
        with_servers = query_bool("with_servers", req.query.get("with_servers", "false"))
    with req.cloud.db.reader() as s:
        node, svc = _node_and_service(req, s, hypervisor_id)
        servers = records.instances_on_host(s, node.host) if with_servers else None
        return {"hypervisor": _hypervisor(req, node, svc, detail=True, servers=servers)}


def hypervisor_uptime(req: ApiRequest, hypervisor_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hypervisors:uptime")
    with req.cloud.db.reader() as s:
        _node_and_service(req, s, hypervisor_id)
    raise NotImplementedHere("Host uptime is not reported by Cirrus agents.")


def hypervisor_statistics(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hypervisors:statistics")
    with req.cloud.db.reader() as s:
        return {"hypervisor_statistics": records.statistics(s)}


def _search(req: ApiRequest, pattern: str, *, with_servers: bool) -> dict:
    with req.cloud.db.reader() as s:
        nodes = records.list_compute_nodes(s, hostname_pattern=pattern)
        services = records.agent_services(s)
        views = [_hypervisor(req, node, services[node.host], detail=False,
                             servers=records.instances_on_host(s, node.host)
                             if with_servers else None)
                 for node in nodes if node.host in services]
    if not views:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return {"hypervisors": views}


@available("2.1", "2.52")
def search_hypervisors(req: ApiRequest, pattern: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hypervisors:search")
    return _search(req, pattern, with_servers=False)


@available("2.1", "2.52")
def hypervisor_servers(req: ApiRequest, pattern: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hypervisors:servers")
    return _search(req, pattern, with_servers=True)


def list_aggregates(req: ApiRequest) -> dict:
    """Cirrus has no host aggregates; the empty list lets `openstack hypervisor show` work."""
    authorize(req.ctx, ADMIN, "os_compute_api:os-aggregates:index")
    return {"aggregates": []}


# ---------------------------------------------------------------- services


def _service(req: ApiRequest, svc: Service) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": svc.uuid if UUID_IDS(req) else svc.id,
        "binary": svc.binary,
        "disabled_reason": svc.disabled_reason,
        "host": svc.host,
        "state": "up" if service_is_up(svc, req.cloud.settings.service_down_time) else "down",
        "status": "disabled" if svc.disabled else "enabled",
        "updated_at": iso_micro(records.last_update(svc)),
        "zone": service_zone(svc, req.cloud.settings),
    }
    if FORCED_DOWN(req):
        view["forced_down"] = bool(svc.forced_down)
    return view


def list_services(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-services:list")
    with req.cloud.db.reader() as s:
        return {"services": [_service(req, svc) for svc in records.list_services(
            s, host=req.query.get("host"), binary=req.query.get("binary"))]}


def update_service(req: ApiRequest, service_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-services:update")
    if UUID_IDS(req):
        return _update_by_uuid(req, service_id)
    return _legacy_action(req, service_id)


def _update_by_uuid(req: ApiRequest, service_id: str) -> dict:
    body = req.json
    validate(schemas.service_update_v253, body)
    if not _is_uuid(service_id):
        raise BadRequest(f"Invalid uuid {service_id}")
    if body.get("status") == "enabled" and body.get("disabled_reason"):
        raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")

    def work(s):
        svc = records.get_service(s, service_id, by_uuid=True)
        records.ensure_updatable(svc)
        if "status" not in body and "forced_down" not in body:
            raise BadRequest("No updates were requested. Fields 'status' or 'forced_down' "
                             "should be specified.")
        if "status" in body:
            records.set_status(s, svc, disabled=body["status"] == "disabled",
                               reason=body.get("disabled_reason"))
        if "forced_down" in body:
            records.set_forced_down(s, svc, to_bool(body["forced_down"]))
        return {"service": _service(req, svc)}

    return req.cloud.db.run(work)


def _legacy_action(req: ApiRequest, action: str) -> dict:
    actions = {"enable", "disable", "disable-log-reason"}
    if FORCED_DOWN(req):
        actions.add("force-down")
    if action not in actions:
        raise NotFound("Unknown action")
    body = req.json
    validate(SERVICE_ACTION_SCHEMA(req), body)
    host, binary = body["host"], body["binary"]
    if records.canonical_binary(binary) != AGENT_BINARY:
        raise BadRequest(f"Updating a {binary} service is not supported. Only "
                         f"{AGENT_BINARY} services can be updated.")
    reply: dict[str, Any] = {"host": host, "binary": binary}
    if action == "disable-log-reason" and "disabled_reason" not in body:
        raise BadRequest("Missing disabled reason field")
    if action == "force-down" and "forced_down" not in body:
        raise BadRequest("Missing forced_down field")

    def work(s):
        svc = records.find_service(s, host, binary)
        if action == "enable":
            records.set_status(s, svc, disabled=False)
            reply["status"] = "enabled"
        elif action == "disable":
            records.set_status(s, svc, disabled=True)
            reply["status"] = "disabled"
        elif action == "disable-log-reason":
            records.set_status(s, svc, disabled=True, reason=body["disabled_reason"])
            reply.update(status="disabled", disabled_reason=body["disabled_reason"])
        else:
            forced = to_bool(body["forced_down"])
            records.set_forced_down(s, svc, forced)
            reply["forced_down"] = forced
        return {"service": reply}

    return req.cloud.db.run(work)


def delete_service(req: ApiRequest, service_id: str) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-services:delete")
    by_uuid = UUID_IDS(req)
    if by_uuid and not _is_uuid(service_id):
        raise BadRequest(f"Invalid uuid {service_id}")
    if not by_uuid and not service_id.isdigit():
        raise BadRequest(f"Invalid input for field/attribute id. Value: {service_id}. "
                         "It must be an integer.")
    def work(s):
        svc = records.get_service(s, service_id, by_uuid=by_uuid)
        gone = (svc.binary, svc.host)
        records.delete_service(s, svc)
        return gone

    binary, host = req.cloud.db.run(work)
    if binary == AGENT_BINARY:
        # The host is gone: so is the work queued for it (an agent started again on it
        # registers afresh, with a new queue).
        try:
            AgentAPI(req.cloud.bus).discard(host)
        except Exception:
            log.warning("could not delete the queue of removed host %s", host, exc_info=True)
    return Reply(204)


ROUTES = [
    ("GET", "/v2.1/os-availability-zone", list_zones),
    ("GET", "/v2.1/os-availability-zone/detail", list_zones_detail),
    ("GET", "/v2.1/os-hypervisors", list_hypervisors),
    ("GET", "/v2.1/os-hypervisors/detail", list_hypervisors_detail),
    ("GET", "/v2.1/os-hypervisors/statistics", hypervisor_statistics),
    ("GET", "/v2.1/os-hypervisors/{hypervisor_id}", show_hypervisor),
    ("GET", "/v2.1/os-hypervisors/{hypervisor_id}/uptime", hypervisor_uptime),
    ("GET", "/v2.1/os-hypervisors/{pattern}/search", search_hypervisors),
    ("GET", "/v2.1/os-hypervisors/{pattern}/servers", hypervisor_servers),
    ("GET", "/v2.1/os-aggregates", list_aggregates),
    ("GET", "/v2.1/os-services", list_services),
    ("PUT", "/v2.1/os-services/{service_id}", update_service),
    ("DELETE", "/v2.1/os-services/{service_id}", delete_service),
]
