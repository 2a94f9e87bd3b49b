"""Availability zones and hypervisors (Nova v2.1 up to the maximum microversion). Admin
only, except the plain availability-zone list. Services are in services.py.

Hypervisors keep the type their driver reports: `QEMU` for libvirt (as Nova's libvirt
driver), `fake` for the fake driver.

Microversions: 2.28 gives hypervisors' `cpu_info` as an object (a JSON string before); 2.33
pages hypervisor lists; 2.53 replaces integer ids of hypervisors and services with UUIDs and
moves hypervisor search into `?hypervisor_hostname_pattern=` and `?with_servers=`; 2.88
drops the resource figures (vcpus, memory, disk, cpu_info, running_vms...) from hypervisors,
adds `uptime` to their detail and removes /statistics and /{id}/uptime.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuidlib
from typing import Any

from cirrus.api.compute.common import (
    available,
    next_links,
    page_limit_and_marker,
    query_bool,
)
from cirrus.api.compute.microversion import Since
from cirrus.api.compute.views import iso_micro
from cirrus.api.framework import ApiRequest
from cirrus.db.models import ComputeNode, Service
from cirrus.errors import BadRequest, NotFound
from cirrus.hosts import records
from cirrus.hosts.liveness import service_is_up
from cirrus.hosts.zones import INTERNAL_ZONE, availability_zones
from cirrus.identity.policy import ADMIN, READ, authorize

# The microversion gates of this module (see the docstring above).
FORCED_DOWN = Since("2.11")  # services show forced_down; the force-down action
CPU_INFO_OBJECT = Since("2.28")  # hypervisors' cpu_info an object, not a JSON string
PAGED_HYPERVISORS = Since("2.33")  # limit/marker on hypervisor lists
UUID_IDS = Since("2.53")  # UUIDs for hypervisors and services; PUT /os-services/{uuid}
RESOURCE_FIGURES = Since("2.1", until="2.87")  # vcpus, memory, disk... in the detail
UPTIME_IN_BODY = Since("2.88")  # `uptime` in the detail; /uptime and /statistics gone


def is_uuid(value: str) -> bool:
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
            hosts = {host: {records.nova_binary(binary): {
                **state, "updated_at": iso_micro(state["updated_at"])}
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
        view.update({
            "hypervisor_type": node.hypervisor_type,
            "hypervisor_version": node.hypervisor_version,
            "host_ip": node.host_ip,
            "service": {"id": svc.uuid if uuids else svc.id, "host": node.host,
                        "disabled_reason": svc.disabled_reason},
        })
        if UPTIME_IN_BODY(req):
            view["uptime"] = uptime_text(node)
    if detail and RESOURCE_FIGURES(req):
        free_disk = node.local_gb - node.local_gb_used
        view.update({
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
        if not is_uuid(hypervisor_id):
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


def uptime_text(node: ComputeNode, now: dt.datetime | None = None) -> str | None:
    """The host's uptime in the first words of `uptime`'s line (" 15:04:11 up 3 days,
    2:10"), from the boot time its agent reports; None before an agent reported it."""
    if node.booted_at is None:
        return None
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    minutes = max(0, int((now - node.booted_at).total_seconds()) // 60)
    days, minutes = divmod(minutes, 24 * 60)
    clock = f"{minutes // 60:2d}:{minutes % 60:02d}"
    up = (f"{days} day{'s' if days != 1 else ''}, {clock}" if days else clock)
    return f" {now:%H:%M:%S} up {up}"


@available("2.1", "2.87")
def hypervisor_uptime(req: ApiRequest, hypervisor_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-hypervisors:uptime")
    with req.cloud.db.reader() as s:
        node, svc = _node_and_service(req, s, hypervisor_id)
        view = _hypervisor(req, node, svc, detail=False)
    view["uptime"] = uptime_text(node)
    if view["uptime"] is None:
        raise NotFound(f"The uptime of hypervisor {hypervisor_id} is not known yet: its agent "
                       "has not reported it.")
    return {"hypervisor": view}


@available("2.1", "2.87")
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
]
