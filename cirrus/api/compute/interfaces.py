"""A server's NICs: `os-interface` (list, show, hot-plug attach and detach) and `ips`.

Attach and detach are synchronous as in Nova: the API asks the conductor, which makes or
binds the port, has the agent plug it into the host's dataplane and the running VM, and
answers once it is there (or undoes the port and says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from cirrus.api.compute.microversion import Since
from cirrus.api.compute.views import compressed_ip
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import capabilities, instances, networking
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.errors import BadRequest, CirrusError, Conflict, NotFound, ServiceUnavailable
from cirrus.identity.policy import READ, WRITE, authorize

if TYPE_CHECKING:
    from cirrus.db.models import IPAllocation, Port

_attach = {
    "type": "object",
    "properties": {
        "interfaceAttachment": {
            "type": "object",
            "properties": {
                "net_id": {"type": "string", "format": "uuid"},
                "port_id": {"type": "string", "format": "uuid"},
                "fixed_ips": {
                    "type": "array", "maxItems": 1,
                    "items": {"type": "object",
                              "properties": {"ip_address": {"type": "string"}},
                              "required": ["ip_address"], "additionalProperties": False},
                },
                "tag": {"type": "string", "maxLength": 60},
            },
            "additionalProperties": False,
        },
    },
    "required": ["interfaceAttachment"],
    "additionalProperties": False,
}

# 2.70: NICs show their device `tag`. Cirrus does not keep device tags yet: always null.
DEVICE_TAG = Since("2.70")
T = TypeVar("T")
# What a conductor's refusal becomes at the API (the bus carries the type's name).
_REMOTE = {cls.__name__: cls for cls in (BadRequest, Conflict, NotFound)}


def _attachment(req: ApiRequest, port: Port, ips: list[IPAllocation]) -> dict:
    view: dict[str, Any] = {
        "port_state": port.status, "port_id": port.id, "net_id": port.network_id,
        "mac_addr": port.mac_address,
        "fixed_ips": [{"subnet_id": ip.subnet_id, "ip_address": compressed_ip(ip.ip_address)}
                      for ip in ips]}
    if DEVICE_TAG(req):
        view["tag"] = None
    return view


def _attachments(req: ApiRequest, server_id: str) -> list[dict]:
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        port_ids = [n["port_id"] for n in sorted(inst.nics or [], key=lambda n: n["index"])]
        return [_attachment(req, port, ips)
                for port, ips in networking.attachments(s, port_ids)]


def list_interfaces(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-attach-interfaces:list")
    return {"interfaceAttachments": _attachments(req, server_id)}


def show_interface(req: ApiRequest, server_id: str, port_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-attach-interfaces:show")
    for attachment in _attachments(req, server_id):
        if attachment["port_id"] == port_id:
            return {"interfaceAttachment": attachment}
    raise NotFound(f"Instance {server_id} has no interface with port {port_id}.")


def _ask_conductor(what: str, ask: Callable[[], T]) -> T:
    """`ask` the conductor for `what` (attach_interface, detach_interface), its refusal
    turned into the API's error."""
    try:
        return ask()
    except RemoteError as exc:
        error = _REMOTE.get(exc.exc_type)
        if error is not None:
            raise error(exc.message) from exc
        raise CirrusError(f"{what} failed: {exc.message}") from exc
    except BusTimeout as exc:
        raise ServiceUnavailable(f"{what} got no answer in time; try again.") from exc


def attach_interface(req: ApiRequest, server_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-attach-interfaces:create")
    body = req.json
    validate(_attach, body)
    attach = body["interfaceAttachment"]
    if attach.get("net_id") and attach.get("port_id"):
        raise BadRequest("Must not input both network_id and port_id")
    request: str | list[dict]
    if attach.get("port_id"):
        if attach.get("fixed_ips"):
            raise BadRequest("Must not input both port_id and fixed_ips")
        request = [{"port": attach["port_id"]}]
    elif attach.get("net_id"):
        request = [{"uuid": attach["net_id"]}]
        if attach.get("fixed_ips"):
            request[0]["fixed_ip"] = attach["fixed_ips"][0]["ip_address"]
    else:
        request = networking.AUTO
    request = networking.parse_requested(request)
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        capabilities.require(s, inst, "hot_plug_nic", "attach_interface")
        networking.check_requested(s, req.ctx, request, 1)
    conductor, timeout = ConductorAPI(req.cloud.bus), req.cloud.settings.rpc_timeout
    port_id = _ask_conductor("attach_interface", lambda: conductor.attach_interface(
        req.ctx, inst.uuid, request, timeout=timeout))
    with req.cloud.db.reader() as s:
        port, ips = networking.attachment(s, port_id)
        return Reply(200, {"interfaceAttachment": _attachment(req, port, ips)})


def detach_interface(req: ApiRequest, server_id: str, port_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-attach-interfaces:delete")
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        if port_id not in {n["port_id"] for n in inst.nics or []}:
            raise NotFound(f"Port {port_id} is not attached")
    _detach(req, inst.uuid, port_id)
    return Reply(202)


def detach_from_server(req: ApiRequest, server_id: str, port_id: str) -> None:
    """Take a port out of a server before the port itself is deleted (no-op if the server
    is gone or no longer has it)."""
    with req.cloud.db.reader() as s:
        nics = networking.live_nics(s, server_id)
    if nics and any(n["port_id"] == port_id for n in nics):
        _detach(req, server_id, port_id)


def _detach(req: ApiRequest, server_id: str, port_id: str) -> None:
    conductor, timeout = ConductorAPI(req.cloud.bus), req.cloud.settings.rpc_timeout
    _ask_conductor("detach_interface", lambda: conductor.detach_interface(
        req.ctx, server_id, port_id, timeout=timeout))


def list_ips(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:ips:index")
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        return {"addresses": networking.addresses(s, [inst]).get(inst.uuid, {})}


def show_ips(req: ApiRequest, server_id: str, network_label: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:ips:show")
    addresses = list_ips(req, server_id)["addresses"]
    if network_label not in addresses:
        raise NotFound("Instance is not a member of specified network")
    return {network_label: addresses[network_label]}


ROUTES = [
    ("GET", "/v2.1/servers/{server_id}/os-interface", list_interfaces),
    ("POST", "/v2.1/servers/{server_id}/os-interface", attach_interface),
    ("GET", "/v2.1/servers/{server_id}/os-interface/{port_id}", show_interface),
    ("DELETE", "/v2.1/servers/{server_id}/os-interface/{port_id}", detach_interface),
    ("GET", "/v2.1/servers/{server_id}/ips", list_ips),
    ("GET", "/v2.1/servers/{server_id}/ips/{network_label}", show_ips),
]
