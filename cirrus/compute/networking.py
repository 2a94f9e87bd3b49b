"""A server's NICs: what the create request asked for, the ports made or bound for it, and
its addresses as the compute API shows them.

The NIC map kept on the instance (`Instance.nics`, the seed's `ports_pattern`) lists the
ports in the order the user asked for them: index 0 is eth0 in the guest, and so on. Each
entry says whether Cirrus made the port (deleted with the server) or the user passed it
(`preserve`: unbound and kept when the server goes).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import TYPE_CHECKING, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import Instance, IPAllocation, Network, Port, Subnet
from cirrus.errors import BadRequest, Conflict, Forbidden, NotFound, QuotaExceeded
from cirrus.network import auto, networks, ports
from cirrus.network import quotas as netquotas
from cirrus.network.model import Nic

if TYPE_CHECKING:
    from cirrus.config import Settings

NONE, AUTO = "none", "auto"


def parse_requested(requested: object) -> str | list[dict]:
    """The `networks` of a create request, checked for shape: "auto", "none", or a list of
    {"uuid"}, {"uuid", "fixed_ip"} or {"port"} in NIC order."""
    if requested in (NONE, AUTO):
        return requested
    assert isinstance(requested, list)  # the JSON schema allows nothing else
    out: list[dict] = []
    seen_ports: set[str] = set()
    for item in requested:
        port, uuid, fixed_ip = item.get("port"), item.get("uuid"), item.get("fixed_ip")
        if port:
            if port in seen_ports:
                raise BadRequest(f"Port {port} is requested more than once.")
            seen_ports.add(port)
            out.append({"port": port})
        elif uuid:
            entry = {"uuid": uuid}
            if fixed_ip is not None:
                try:
                    entry["fixed_ip"] = str(ipaddress.ip_address(fixed_ip))
                except ValueError as exc:
                    raise BadRequest(f"Invalid fixed IP address ({fixed_ip})") from exc
            out.append(entry)
        else:
            raise BadRequest("Bad networks format: network uuid is not in proper format "
                             "(a network needs 'uuid' or 'port').")
    return out


def check_requested(s: Session, ctx: RequestContext, requested: str | list[dict],
                    max_count: int) -> None:
    """Refuse, before anything is recorded, what could never be built: networks or ports the
    caller cannot see, ports already in use, one port or fixed IP for several servers."""
    if isinstance(requested, str):
        return
    seen_networks: set[str] = set()
    for item in requested:
        if "port" in item:
            if max_count > 1:
                raise BadRequest("Unable to launch multiple instances with a single "
                                 "configured port ID. Please launch your instance one by one "
                                 "with different ports.")
            try:
                port = ports.get_port(s, ctx, item["port"])
            except NotFound as exc:
                raise BadRequest(f"Port id {item['port']} could not be found.") from exc
            if port.project_id != ctx.project_id and not ctx.is_admin:
                raise Forbidden(f"Port {port.id} belongs to another project.")
            if port.device_id:
                raise Conflict(f"Port {port.id} is still in use.")
        else:
            if "fixed_ip" in item and max_count > 1:
                raise BadRequest("max_count cannot be greater than 1 if an fixed_ip is "
                                 "specified.")
            if item["uuid"] in seen_networks:
                continue  # one look-up per network, however often it is asked for
            try:
                networks.get_network(s, ctx, item["uuid"])
            except NotFound as exc:
                raise BadRequest(f"Network {item['uuid']} could not be found.") from exc
            seen_networks.add(item["uuid"])


def count_within_port_quota(s: Session, settings: Settings, project_id: str,
                            requested: str | list[dict], min_count: int, max_count: int) -> int:
    """Nova's validate_networks: how many of max_count servers the project's port quota can
    give their new ports (ports passed by the user exist already); PortLimitExceeded (403)
    if not even min_count. So a create cannot ask for more ports than the quota allows and
    leave the build to find out, port by port."""
    if requested == NONE:
        return max_count
    per_server = 1 if requested == AUTO else sum(1 for item in requested if "port" not in item)
    if not per_server:
        return max_count
    limit = netquotas.get_limits(s, settings, project_id)["port"]
    if limit == netquotas.UNLIMITED:
        return max_count
    used = netquotas.usage(s, project_id, "port")
    if used > limit:
        raise QuotaExceeded(f"The number of defined ports: {used} is over the limit: {limit}")
    fits = (limit - used) // per_server
    if fits < min_count:
        raise QuotaExceeded("Maximum number of ports exceeded")
    return min(fits, max_count)


def device_owner(inst: Instance, default_az: str) -> str:
    return f"compute:{inst.availability_zone or default_az}"


def allocate(s: Session, ctx: RequestContext, settings: Settings, inst: Instance) -> list[dict]:
    """Make or bind the instance's ports, in order, and record the NIC map. Idempotent: an
    instance that has its map already (a redelivered build) keeps it."""
    if inst.nics:
        return list(inst.nics)
    requested = resolve_auto(s, ctx, settings, inst.project_id,
                             (inst.request_spec or {}).get("networks", NONE))
    nics = [allocate_one(s, ctx, settings, inst, item, index)
            for index, item in enumerate(requested)]
    inst.nics = nics
    return nics


def allocate_one(s: Session, ctx: RequestContext, settings: Settings, inst: Instance, item: dict,
                 index: int) -> dict:
    """Make (or bind, for {"port"}) one port for the instance; its NIC map entry."""
    owner = device_owner(inst, settings.default_availability_zone)
    if "port" in item:
        port = ports.get_port(s, ctx, item["port"])
        if port.device_id and port.device_id != inst.uuid:
            raise Conflict(f"Port {port.id} is still in use.")
        port = ports.update_binding(s, port.id, device_id=inst.uuid, device_owner=owner,
                                    host_id=None)
        preserve = True
    else:
        fixed = [{"ip_address": item["fixed_ip"]}] if item.get("fixed_ip") else None
        port = ports.create_port(s, ctx, settings, network_id=item["uuid"], fixed_ips=fixed,
                                 device_id=inst.uuid, device_owner=owner)
        preserve = False
    return {"port_id": port.id, "network_id": port.network_id, "index": index,
            "name": f"eth{index}", "preserve": preserve}


def resolve_auto(s: Session, ctx: RequestContext, settings: Settings, project_id: str,
                 requested: str | list[dict]) -> list[dict]:
    """`auto` as the one network it means for the project; `none` as no NIC."""
    if requested == NONE:
        return []
    if requested == AUTO:
        return [{"uuid": auto.get_or_create_auto_network(s, ctx, settings, project_id).id}]
    # parse_requested() let no other string through.
    return list(cast("list[dict]", requested))


def deallocate(s: Session, nics: list[dict]) -> None:
    """Delete the ports Cirrus made; unbind and keep the ones the user passed."""
    for nic in nics or []:
        if s.get(Port, nic["port_id"]) is None:
            continue
        if nic.get("preserve"):
            ports.update_binding(s, nic["port_id"], device_id="", device_owner="", host_id=None)
        else:
            ports.delete_port(s, nic["port_id"])


def bind_host(s: Session, nics: list[dict], host: str | None, *, active: bool = False) -> None:
    """Record the host a server's ports are plugged on (None: unplugged) and their status."""
    ids = [n["port_id"] for n in nics or []]
    if not ids:
        return
    s.execute(update(Port).where(Port.id.in_(ids)).values(
        binding_host_id=host, binding_vif_type="bridge" if host else "unbound",
        status="ACTIVE" if active else "DOWN").execution_options(synchronize_session=False))


def build_nics(s: Session, nics: list[dict]) -> list[Nic]:
    """The NICs as plain data for the agent, the dataplane and the renderers."""
    return ports.build_nics(s, list(nics or [])) if nics else []


def addresses(s: Session, insts: list[Instance]) -> dict[str, dict]:
    """uuid -> the `addresses` of the compute API: {network name: [{"version", "addr",
    "OS-EXT-IPS:type", "OS-EXT-IPS-MAC:mac_addr"}]}, NICs in guest order."""
    port_ids = [n["port_id"] for inst in insts for n in (inst.nics or [])]
    if not port_ids:
        return {}
    rows = s.execute(
        select(Port.id, Port.mac_address, Network.name, Network.id, IPAllocation.ip_address,
               Subnet.ip_version)
        .join(Network, Network.id == Port.network_id)
        .join(IPAllocation, IPAllocation.port_id == Port.id)
        .join(Subnet, Subnet.id == IPAllocation.subnet_id)
        .where(Port.id.in_(port_ids))
    ).all()
    by_port: dict[str, list] = defaultdict(list)
    for port_id, mac, net_name, net_id, ip, version in rows:
        by_port[port_id].append((net_name or net_id, mac, ip, version))
    result: dict[str, dict] = {}
    for inst in insts:
        view: dict[str, list] = {}
        for nic in sorted(inst.nics or [], key=lambda n: n["index"]):
            for net, mac, ip, version in sorted(by_port.get(nic["port_id"], []),
                                                key=lambda r: (r[3], r[2])):
                view.setdefault(net, []).append({
                    "version": version, "addr": _compressed(ip), "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": mac})
        result[inst.uuid] = view
    return result


def _compressed(ip: str) -> str:
    """An address as Nova shows it: IPv6 in compressed form (`::babe:dc0c:1602`)."""
    try:
        return ipaddress.ip_address(ip).compressed
    except ValueError:
        return ip


def attachments(s: Session, port_ids: list[str]) -> list[tuple[Port, list[IPAllocation]]]:
    """The ports of `port_ids` that exist, in that order, each with its fixed IPs."""
    if not port_ids:
        return []
    found = {p.id: p for p in s.scalars(select(Port).where(Port.id.in_(port_ids)))}
    ips: dict[str, list[IPAllocation]] = {}
    for ip in s.scalars(select(IPAllocation).where(IPAllocation.port_id.in_(port_ids))):
        ips.setdefault(ip.port_id, []).append(ip)
    return [(found[p], ips.get(p, [])) for p in port_ids if p in found]


def attachment(s: Session, port_id: str) -> tuple[Port, list[IPAllocation]]:
    port = s.get(Port, port_id)
    if port is None:
        raise NotFound(f"Port {port_id} could not be found.")
    return port, list(s.scalars(select(IPAllocation).where(IPAllocation.port_id == port.id)))


def live_nics(s: Session, uuid: str) -> list[dict] | None:
    """The NIC map of a server that is not deleted (None if there is none)."""
    return s.scalar(select(Instance.nics).where(Instance.uuid == uuid,
                                                Instance.deleted.is_(False)))


def check_inject_network_info(s: Session, ctx: RequestContext, uuid: str) -> None:
    """Nova's injectNetworkInfo on Cirrus's drivers: nothing to rewrite. A guest takes its
    network from the config drive and the metadata written at build, and a server's ports
    and addresses do not change under it, so there is nothing newer to inject (Nova's
    libvirt driver does nothing for it either). The request is checked as Nova checks it:
    the server exists, is the caller's to see, and is not being built or deleted."""
    from . import instances, states

    inst = instances.get(s, ctx, uuid)
    if inst.vm_state == states.BUILDING or inst.task_state == states.DELETING:
        raise Conflict(f"Cannot 'injectNetworkInfo' instance {uuid} while it is in vm_state "
                       f"{inst.vm_state}" + (f", task_state {inst.task_state}"
                                              if inst.task_state else ""))
