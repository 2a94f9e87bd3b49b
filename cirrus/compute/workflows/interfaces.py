"""NIC hot-plug: calls from the API, answered when done (or with why not), as in Nova.

Neither step changes the instance's state: a NIC is plugged only into an instance with
no task, active or stopped, on a host.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions, capabilities, l2peers, networking, states
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Instance
from cirrus.errors import Conflict, NotFound
from cirrus.network import enforcement


def _pluggable(inst: Instance | None, uuid: str, action: str) -> tuple[Instance, str]:
    """The instance and its host, if a NIC may be plugged into it now."""
    if inst is None or inst.deleted:
        raise NotFound(f"Instance {uuid} could not be found.")
    if inst.task_state is not None or inst.vm_state not in (states.ACTIVE, states.STOPPED) \
            or not inst.host:
        raise Conflict(f"Cannot '{action}' instance {uuid} while it is in vm_state "
                       f"{inst.vm_state}" + (f", task_state {inst.task_state}"
                                              if inst.task_state else ""))
    return inst, inst.host


def attach_interface(deps: WorkflowDeps, ctx: RequestContext,
                     payload: dict[str, Any]) -> dict[str, Any]:
    uuid = payload["uuid"]

    def add(s: Session) -> tuple[str, dict[str, Any], dict[str, Any]]:
        inst, host = _pluggable(s.scalar(select(Instance).where(Instance.uuid == uuid)
                                         .with_for_update()), uuid, "attach_interface")
        capabilities.require(s, inst, "hot_plug_nic", "attach_interface")
        item = networking.resolve_auto(s, ctx, deps.settings, inst.project_id,
                                       payload["request"])[0]
        existing = list(inst.nics or [])
        index = max((n["index"] for n in existing), default=-1) + 1
        nic = networking.allocate_one(s, ctx, deps.settings, inst, item, index)
        inst.nics = [*existing, nic]
        networking.bind_host(s, [nic], host, active=True)
        actions.start_action(s, ctx, uuid, "attach_interface")
        return host, nic, networking.build_nics(s, [nic])[0].to_dict()

    host, nic, plug = deps.db.run(add)
    l2peers.push_networks(deps.db, deps.agents, ctx, [nic["network_id"]])  # l2
    with deps.db.reader() as s:  # the filter state first: the new port is not open (sg)
        hosts = enforcement.hosts_for_ports(s, [nic["port_id"]])
    enforcement.send(deps.db, deps.agents, ctx, hosts | {host})
    try:
        deps.agents.attach_interface(ctx, host, uuid, plug, timeout=deps.settings.rpc_timeout)
    except (BusTimeout, RemoteError) as exc:
        deps.db.run(lambda s: _forget_nic(s, uuid, nic))
        raise Conflict(f"Failed to attach network adapter device to {uuid}: {exc}") from exc
    log.info("instance %s: port %s attached as %s", uuid, nic["port_id"], nic["name"])
    return {"port_id": nic["port_id"]}


def detach_interface(deps: WorkflowDeps, ctx: RequestContext,
                     payload: dict[str, Any]) -> dict[str, Any]:
    uuid, port_id = payload["uuid"], payload["port_id"]
    with deps.db.reader() as s:
        inst, host = _pluggable(s.scalar(select(Instance).where(Instance.uuid == uuid)),
                                uuid, "detach_interface")
        capabilities.require(s, inst, "hot_plug_nic", "detach_interface")
        nic = next((n for n in inst.nics or [] if n["port_id"] == port_id), None)
        if nic is None:
            raise NotFound(f"Port {port_id} is not attached")
        plug = networking.build_nics(s, [nic])[0].to_dict()
    try:
        deps.agents.detach_interface(ctx, host, uuid, plug, timeout=deps.settings.rpc_timeout)
    except (BusTimeout, RemoteError) as exc:
        raise Conflict(f"Failed to detach network adapter device from {uuid}: {exc}") from exc

    def remove(s: Session) -> set[str]:
        hosts = enforcement.hosts_for_ports(s, [port_id])
        _forget_nic(s, uuid, nic)
        actions.start_action(s, ctx, uuid, "detach_interface")
        return hosts

    enforcement.send(deps.db, deps.agents, ctx, deps.db.run(remove))  # sg
    l2peers.push_networks(deps.db, deps.agents, ctx, [nic["network_id"]])  # l2
    log.info("instance %s: port %s detached", uuid, port_id)
    return {}


def _forget_nic(s: Session, uuid: str, nic: dict[str, Any]) -> None:
    inst = s.scalar(select(Instance).where(Instance.uuid == uuid).with_for_update())
    if inst is not None:
        inst.nics = [n for n in inst.nics or [] if n["port_id"] != nic["port_id"]]
    networking.deallocate(s, [nic])
