"""Nova's floating IP proxy: os-floating-ips and os-floating-ip-pools (up to microversion
2.35), the addFloatingIp and removeFloatingIp server actions (up to 2.43). Gone after them,
as in Nova: clients use the network API (`openstack server add floating ip` already does).
The floating IPs are the network service's (cirrus/network/nova_floating_ips.py)."""

from __future__ import annotations

from cirrus.api.compute.microversion import Since, max_version
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.compute import instances
from cirrus.errors import BadRequest
from cirrus.identity.policy import READ, WRITE, authorize
from cirrus.network import floating_ips as neutron
from cirrus.network import nova_floating_ips as service

LAST = "2.35"  # the os-floating-ips proxy's last microversion
ACTIONS_GONE = Since("2.44")  # addFloatingIp/removeFloatingIp's removal

_ADDRESS = {"type": "string", "format": "ipv4"}
CREATE_BODY = {"type": ["object", "null"], "properties": {
    "pool": {"type": ["string", "null"], "maxLength": 255}}}
ADD_BODY = {"type": "object", "required": ["address"], "additionalProperties": False,
            "properties": {"address": _ADDRESS, "fixed_address": _ADDRESS}}
REMOVE_BODY = {"type": "object", "required": ["address"], "additionalProperties": False,
               "properties": {"address": _ADDRESS}}


@max_version(LAST)
def list_pools(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-floating-ip-pools")
    with req.cloud.db.reader() as s:
        return {"floating_ip_pools": [{"name": name} for name in service.pools(s, req.ctx)]}


@max_version(LAST)
def list_floating_ips(req: ApiRequest) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-floating-ips:list")
    with req.cloud.db.reader() as s:
        return {"floating_ips": service.views(s, neutron.list_floatingips(s, req.ctx, {}))}


@max_version(LAST)
def show_floating_ip(req: ApiRequest, floating_ip_id: str) -> dict:
    authorize(req.ctx, READ, "os_compute_api:os-floating-ips:show")
    with req.cloud.db.reader() as s:
        return {"floating_ip": service.views(s, [service.get(s, req.ctx, floating_ip_id)])[0]}


@max_version(LAST)
def create_floating_ip(req: ApiRequest) -> dict:
    authorize(req.ctx, WRITE, "os_compute_api:os-floating-ips:create")
    body = req.json if req.raw_body else None
    validate(CREATE_BODY, body)
    pool = (body or {}).get("pool")

    def work(s) -> dict:
        return service.views(s, [service.allocate(s, req.ctx, req.cloud.settings, pool)])[0]

    return {"floating_ip": req.cloud.db.run(work)}


@max_version(LAST)
def delete_floating_ip(req: ApiRequest, floating_ip_id: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-floating-ips:delete")

    def work(s) -> None:
        neutron.delete_floatingip(s, req.ctx, service.get(s, req.ctx, floating_ip_id).id)

    req.cloud.db.run(work)
    return Reply(202)


def _server_ports(s, req: ApiRequest, server_id: str) -> list[str]:
    inst = instances.get(s, req.ctx, server_id)
    return [n["port_id"] for n in sorted(inst.nics or [], key=lambda n: n["index"])]


def add_floating_ip(req: ApiRequest, server_id: str, body: dict) -> Reply:
    if ACTIONS_GONE(req):
        raise BadRequest("There is no such action: addFloatingIp")
    authorize(req.ctx, WRITE, "os_compute_api:os-floating-ips:add")
    validate(ADD_BODY, body["addFloatingIp"])
    args = body["addFloatingIp"]

    def work(s) -> None:
        ports = _server_ports(s, req, server_id)
        fip = service.by_address(s, req.ctx, args["address"])
        service.associate(s, req.ctx, fip, server_id, ports, args.get("fixed_address"))

    req.cloud.db.run(work)
    return Reply(202)


def remove_floating_ip(req: ApiRequest, server_id: str, body: dict) -> Reply:
    if ACTIONS_GONE(req):
        raise BadRequest("There is no such action: removeFloatingIp")
    authorize(req.ctx, WRITE, "os_compute_api:os-floating-ips:remove")
    validate(REMOVE_BODY, body["removeFloatingIp"])

    def work(s) -> None:
        ports = _server_ports(s, req, server_id)
        fip = service.by_address(s, req.ctx, body["removeFloatingIp"]["address"])
        service.disassociate(s, req.ctx, fip, server_id, ports)

    req.cloud.db.run(work)
    return Reply(202)


ACTIONS = {"addFloatingIp": add_floating_ip, "removeFloatingIp": remove_floating_ip}
ROUTES = [
    ("GET", "/v2.1/os-floating-ip-pools", list_pools),
    ("GET", "/v2.1/os-floating-ips", list_floating_ips),
    ("POST", "/v2.1/os-floating-ips", create_floating_ip),
    ("GET", "/v2.1/os-floating-ips/{floating_ip_id}", show_floating_ip),
    ("DELETE", "/v2.1/os-floating-ips/{floating_ip_id}", delete_floating_ip),
]
