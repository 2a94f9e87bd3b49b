"""Server diagnostics: asked of the agent of the server's host, which reads them from its
virt driver (agent/rpcapi.InstanceDiagnostics). Only a running server has any (Nova: 409)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.agent.rpcapi import AgentAPI
from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import instances, states
from cirrus.context import RequestContext
from cirrus.errors import Conflict
from cirrus.virt.power import POWER_STATE_NAMES, RUNNING

if TYPE_CHECKING:
    from cirrus.services import Deps


def get_diagnostics(cloud: Deps, ctx: RequestContext, uuid: str) -> dict[str, Any]:
    """The standard (2.48) diagnostics of server `uuid`."""
    with cloud.db.reader() as s:
        inst = instances.get(s, ctx, uuid)
        host, vm_state, power = inst.host, inst.vm_state, inst.power_state
    if vm_state != states.ACTIVE or power != RUNNING or not host:
        raise Conflict(f"Instance {uuid} in power state "
                       f"{POWER_STATE_NAMES.get(power, 'pending')}. Cannot get_diagnostics "
                       "while the instance is in this state.")
    try:
        return AgentAPI(cloud.bus).diagnostics(ctx, host, uuid)
    except (BusTimeout, RemoteError) as exc:
        raise Conflict(f"The diagnostics of instance {uuid} are not available: {exc}") from exc


def legacy_view(diag: dict[str, Any]) -> dict[str, Any]:
    """The free-form dict before 2.48, in the libvirt driver's old key names."""
    view: dict[str, Any] = {}
    for cpu in diag.get("cpu_details", []):
        view[f"cpu{cpu['id']}_time"] = cpu.get("time")
    memory = diag.get("memory_details", {})
    view["memory"] = (memory.get("maximum") or 0) * 1024  # KiB, as libvirt reported it
    view["memory-actual"] = (memory.get("used") or 0) * 1024
    for index, disk in enumerate(diag.get("disk_details", [])):
        name = f"vd{chr(ord('a') + index)}"
        view.update({f"{name}_read_req": disk.get("read_requests"),
                     f"{name}_read": disk.get("read_bytes"),
                     f"{name}_write_req": disk.get("write_requests"),
                     f"{name}_write": disk.get("write_bytes"),
                     f"{name}_errors": disk.get("errors_count")})
    for index, nic in enumerate(diag.get("nic_details", [])):
        name = f"nic{index}"
        for key in ("rx_octets", "rx_errors", "rx_drop", "rx_packets",
                    "tx_octets", "tx_errors", "tx_drop", "tx_packets"):
            view[f"{name}_{key.replace('_octets', '')}"] = nic.get(key)
    return view
