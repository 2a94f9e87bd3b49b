"""Server views: the wire format of an instance for a given microversion and caller."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cirrus.api.compute.microversion import Since, by_version, fields_since
from cirrus.api.framework import ApiRequest
from cirrus.compute import server_ops, states

if TYPE_CHECKING:
    from cirrus.db.models import Instance, InstanceFault


def iso_z(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def iso_micro(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def compressed_ip(value: str) -> str:
    """An address as Nova shows it: IPv6 compressed (`::babe:dc0c:1602`)."""
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        return value


def links(req: ApiRequest, collection: str, ident: str) -> list[dict]:
    base = f"{req.base_url}/compute"
    return [{"rel": "self", "href": f"{base}/v2.1/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/{collection}/{ident}"}]


def host_id(inst: Instance) -> str:
    if not inst.host:
        return ""
    return hashlib.sha224((inst.project_id + inst.host).encode()).hexdigest()


def server_brief(req: ApiRequest, inst: Instance) -> dict:
    return {"id": inst.uuid, "name": inst.display_name, "links": links(req, "servers", inst.uuid)}


def _flavor_link(req: ApiRequest, inst: Instance) -> dict:
    f = inst.flavor or {}
    return {"id": f.get("flavorid"), "links": [{"rel": "bookmark",
            "href": f"{req.base_url}/compute/flavors/{f.get('flavorid')}"}]}


def _flavor_details(req: ApiRequest, inst: Instance) -> dict:
    f = inst.flavor or {}
    return {"vcpus": f.get("vcpus"), "ram": f.get("ram"), "disk": f.get("disk"),
            "ephemeral": f.get("ephemeral", 0), "swap": f.get("swap", 0),
            "original_name": f.get("name"),
            # Nova's default policy shows flavor extra specs to every reader.
            "extra_specs": dict(f.get("extra_specs") or {})}


# A server's `flavor`: a link to the flavor until 2.46, the flavor's details from 2.47.
FLAVOR_VIEW = by_version({("2.1", "2.46"): _flavor_link, ("2.47", None): _flavor_details})

# Fields a server gains at a microversion.
SERVER_FIELDS_SINCE: dict[str, dict[str, Callable[[Instance], Any]]] = {
    "2.9": {"locked": lambda inst: bool(inst.locked)},
    "2.19": {"description": lambda inst: inst.display_description},
    "2.26": {"tags": lambda inst: list(inst.tags or [])},
    # comp-misc (2.61-2.90): image signature verification is not offered, so no server has
    # trusted certificates; server groups are not offered yet, so a server is in none.
    "2.63": {"trusted_image_certificates": lambda inst: None},
    # comp-a: the reason given to lock (null when unlocked or none was given)
    "2.73": {"locked_reason": lambda inst: server_ops.locked_reason(inst)},
}

# 2.71: one server's view (show, update, rebuild; not the lists) names its server groups.
SERVER_GROUPS = Since("2.71")
# 2.90: every reader sees OS-EXT-SRV-ATTR:hostname (before, admins only, from 2.3).
HOSTNAME_FOR_ALL = Since("2.90")

# The admin's OS-EXT-SRV-ATTR fields a server gains at a microversion.
ADMIN_FIELDS_SINCE: dict[str, dict[str, Callable[[Instance], Any]]] = {
    "2.3": {
        "OS-EXT-SRV-ATTR:reservation_id": lambda inst: inst.reservation_id,
        "OS-EXT-SRV-ATTR:launch_index": lambda inst: inst.launch_index,
        "OS-EXT-SRV-ATTR:hostname": lambda inst: inst.hostname,
        "OS-EXT-SRV-ATTR:kernel_id": lambda inst: "",
        "OS-EXT-SRV-ATTR:ramdisk_id": lambda inst: "",
        "OS-EXT-SRV-ATTR:root_device_name": lambda inst: "/dev/vda" if inst.host else None,
        "OS-EXT-SRV-ATTR:user_data": lambda inst: inst.user_data,
    },
}

# 2.16: admins see `host_status` (the state of the server's host).
HOST_STATUS = Since("2.16")


def _fault(req: ApiRequest, fault: InstanceFault) -> dict:
    view = {"code": fault.code, "created": iso_z(fault.created_at), "message": fault.message}
    if req.ctx.is_admin or fault.code != 500:
        view["details"] = fault.details or ""
    return view


# Nova's view shows `progress` only in these statuses and `fault` only in the last two.
PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
FAULT_STATUSES = ("ERROR", "DELETED")


def server_detail(req: ApiRequest, inst: Instance, fault: InstanceFault | None = None,
                  host_status: str | None = None, *, extended: bool = True,
                  addresses: dict | None = None, listed: bool = False,
                  volumes: list | None = None) -> dict:
    """A server as GET /servers/{id} shows it.

    `extended=False` is the smaller view that PUT /servers/{id} answers with before 2.75:
    Nova leaves out the availability zone, config drive, key name, usage, security group,
    extended status, volume and host attributes there (Tempest's update_server schema
    forbids them).
    """
    status = states.api_status(inst.vm_state, inst.task_state)
    view: dict = {
        "id": inst.uuid,
        "name": inst.display_name,
        "status": status,
        "tenant_id": inst.project_id,
        "user_id": inst.user_id,
        "metadata": dict(inst.metadata_items or {}),
        "hostId": host_id(inst),
        "image": ({"id": inst.image_ref, "links": [{"rel": "bookmark",
                   "href": f"{req.base_url}/compute/images/{inst.image_ref}"}]}
                  if inst.image_ref else ""),
        "flavor": FLAVOR_VIEW(req)(req, inst),
        "created": iso_z(inst.created_at),
        "updated": iso_z(inst.updated_at or inst.created_at),
        "addresses": addresses or {},
        "accessIPv4": inst.access_ip_v4 or "",
        "accessIPv6": compressed_ip(inst.access_ip_v6) if inst.access_ip_v6 else "",
        "links": links(req, "servers", inst.uuid),
        "OS-DCF:diskConfig": "MANUAL",
    }
    if status in PROGRESS_STATUSES:
        view["progress"] = inst.progress or 0
    if fault is not None and status in FAULT_STATUSES:
        view["fault"] = _fault(req, fault)
    if extended:
        view.update(_extended_attributes(req, inst, host_status))
        view["os-extended-volumes:volumes_attached"] = volumes_attached(req, volumes or [])
    view.update(fields_since(req, SERVER_FIELDS_SINCE, inst))
    if SERVER_GROUPS(req) and not listed:
        view["server_groups"] = []  # server groups are not offered yet
    return view


# 2.3: each attached volume shows delete_on_termination too (issue 15).
VOLUME_DELETE_ON_TERMINATION = Since("2.3")


def volumes_attached(req: ApiRequest, volumes: list) -> list[dict]:
    """`os-extended-volumes:volumes_attached` of cirrus.compute.volumes.AttachedVolume items."""
    shown = []
    for item in volumes:
        view: dict = {"id": item.volume_id}
        if VOLUME_DELETE_ON_TERMINATION(req):
            view["delete_on_termination"] = item.delete_on_termination
        shown.append(view)
    return shown


def _extended_attributes(req: ApiRequest, inst: Instance, host_status: str | None) -> dict:
    view: dict = {
        "key_name": inst.key_name,
        "OS-EXT-AZ:availability_zone": inst.availability_zone
        or (req.cloud.settings.default_availability_zone if inst.host else ""),
        "OS-EXT-STS:power_state": inst.power_state,
        "OS-EXT-STS:task_state": inst.task_state,
        "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-SRV-USG:launched_at": iso_micro(inst.launched_at),
        "OS-SRV-USG:terminated_at": iso_micro(inst.terminated_at),
        "os-extended-volumes:volumes_attached": [],
        "config_drive": inst.config_drive or "",
    }
    if not inst.deleted and inst.security_groups != []:  # none left: no key, as in Nova
        view["security_groups"] = [{"name": n} for n in (inst.security_groups or ["default"])]
    if req.ctx.is_admin:
        view["OS-EXT-SRV-ATTR:host"] = inst.host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst.node
        view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{inst.id:08x}"
        view.update(fields_since(req, ADMIN_FIELDS_SINCE, inst))
        if HOST_STATUS(req):
            view["host_status"] = host_status if inst.host else ""
    elif HOSTNAME_FOR_ALL(req):
        view["OS-EXT-SRV-ATTR:hostname"] = inst.hostname
    return view
