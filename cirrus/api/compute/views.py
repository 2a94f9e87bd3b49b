"""Server views: the wire format of an instance for a given microversion and caller."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING

from cirrus.api.framework import ApiRequest
from cirrus.compute import states

if TYPE_CHECKING:
    from cirrus.db.models import Instance, InstanceFault


def iso_z(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def iso_micro(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


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


def _flavor(req: ApiRequest, inst: Instance) -> dict:
    f = inst.flavor or {}
    if req.mv_at_least(2, 47):
        view = {"vcpus": f.get("vcpus"), "ram": f.get("ram"), "disk": f.get("disk"),
                "ephemeral": f.get("ephemeral", 0), "swap": f.get("swap", 0),
                "original_name": f.get("name"),
                # Nova's default policy shows flavor extra specs to every reader.
                "extra_specs": dict(f.get("extra_specs") or {})}
        return view
    return {"id": f.get("flavorid"), "links": [{"rel": "bookmark",
            "href": f"{req.base_url}/compute/flavors/{f.get('flavorid')}"}]}


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
                  addresses: dict | None = None) -> dict:
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
        "flavor": _flavor(req, inst),
        "created": iso_z(inst.created_at),
        "updated": iso_z(inst.updated_at or inst.created_at),
        "addresses": addresses or {},
        "accessIPv4": inst.access_ip_v4 or "",
        "accessIPv6": inst.access_ip_v6 or "",
        "links": links(req, "servers", inst.uuid),
        "OS-DCF:diskConfig": "MANUAL",
    }
    if status in PROGRESS_STATUSES:
        view["progress"] = inst.progress or 0
    if fault is not None and status in FAULT_STATUSES:
        view["fault"] = _fault(req, fault)
    if extended:
        view.update(_extended_attributes(req, inst, host_status))
    if req.mv_at_least(2, 9):
        view["locked"] = bool(inst.locked)
    if req.mv_at_least(2, 19):
        view["description"] = inst.display_description
    if req.mv_at_least(2, 26):
        view["tags"] = list(inst.tags or [])
    return view


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
    if not inst.deleted:
        view["security_groups"] = [{"name": n} for n in (inst.security_groups or ["default"])]
    if req.ctx.is_admin:
        view["OS-EXT-SRV-ATTR:host"] = inst.host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst.node
        view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{inst.id:08x}"
        if req.mv_at_least(2, 3):
            view.update({
                "OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                "OS-EXT-SRV-ATTR:hostname": inst.hostname,
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda" if inst.host else None,
                "OS-EXT-SRV-ATTR:user_data": inst.user_data,
            })
        if req.mv_at_least(2, 16):
            view["host_status"] = host_status if inst.host else ""
    return view
