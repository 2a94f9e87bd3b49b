"""The agent's bus contract: its topic (one per host), its messages, and the client the
conductor and the API use to reach an agent.

Each message's payload is a frozen dataclass (cirrus.bus.contract); version 1 of each is
the unversioned dict sent before the contracts, with the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cirrus.bus import Bus
from cirrus.bus.contract import BusHandler, Payload
from cirrus.bus.contract import endpoints as _endpoints
from cirrus.context import RequestContext

CONSOLE_TIMEOUT = 10.0  # seconds an API request waits for a console log


def agent_topic(host: str) -> str:
    """The topic the agent of `host` takes its work from (one queue per host)."""
    return f"agent.{host}"


@dataclass(frozen=True)
class SpawnInstance(Payload):
    """Build the VM; the agent answers with `spawn_result` to the conductor."""

    spec: dict[str, Any]  # a cirrus.virt.driver.InstanceSpec as plain data
    task: str | None = None  # echoed in spawn_result: "unshelving" for an unshelve


@dataclass(frozen=True)
class DestroyInstance(Payload):
    uuid: str


@dataclass(frozen=True)
class PowerInstance(Payload):
    """Run a power action; the agent answers with `task_result` to the conductor."""

    uuid: str
    task: str  # the task_state the action runs under, echoed in the result
    action: str  # stop, start, reboot, reboot_hard, pause, unpause, suspend or resume


@dataclass(frozen=True)
class AttachInterface(Payload):
    uuid: str
    nic: dict[str, Any]  # a cirrus.network.model.Nic.to_dict()


@dataclass(frozen=True)
class DetachInterface(Payload):
    uuid: str
    nic: dict[str, Any]


@dataclass(frozen=True)
class SnapshotInstance(Payload):
    """Write the root disk's flat copy to the staging `file`; the agent answers with
    `snapshot_result` to the conductor."""

    uuid: str
    image_id: str
    file: str
    host: str | None = None  # sent by conductors before the contracts; the agent's own wins


# ---- shelve (comp-b)
@dataclass(frozen=True)
class ShelveInstance(Payload):
    """Power the VM off and write its root disk's flat copy to the staging `file`; the
    agent answers with `shelve_result` to the conductor."""

    uuid: str
    image_id: str
    file: str


@dataclass(frozen=True)
class OffloadInstance(Payload):
    """Remove the VM and its disks from the host (a shelved server leaving it); unlike
    `destroy`, a later spawn of the same server here is accepted (its unshelve)."""

    uuid: str


# ---- resize and cold migrate (comp-b)
@dataclass(frozen=True)
class PrepareResize(Payload):
    """Power the VM off before it moves to another host (a call)."""

    uuid: str


@dataclass(frozen=True)
class ResizeInstance(Payload):
    """Give the VM the flavor of `spec` here: resize it if this host has it, else build it
    (a move from another host); the agent answers with `resize_result` to the conductor."""

    spec: dict[str, Any]
    task: str  # resize_migrating, or resize_reverting for a revert; echoed in the result
    power_on: bool


@dataclass(frozen=True)
class RebuildInstance(Payload):
    """Make the VM again from `spec` (a new root disk and config drive, the same NICs);
    `stopped`: leave it powered off, as it was. The agent answers with `task_result`
    (issue 13, comp-a)."""

    spec: dict[str, Any]  # a cirrus.virt.driver.InstanceSpec as plain data
    task: str  # echoed in the result
    stopped: bool = False


@dataclass(frozen=True)
class ListInstances(Payload):
    pass


# ---- DHCP (issue 14, dhcp)
@dataclass(frozen=True)
class SyncDhcp(Payload):
    """Serve one network's DHCP as `network` (a cirrus.network.dhcp.model.DhcpNetwork as
    plain data) says, or stop serving it (None). `stamp`: when the control side read it;
    the agent ignores a message older than the last it applied for the network."""

    network_id: str
    network: dict[str, Any] | None = None
    stamp: float = 0.0


@dataclass(frozen=True)
class SyncDhcpAll(Payload):
    """Serve exactly these networks: the agent's whole DHCP state, after it starts."""

    networks: list[dict[str, Any]]
    stamp: float = 0.0


# ---- routers (issue 14, l3)
@dataclass(frozen=True)
class SyncRouter(Payload):
    """Run one router as `router` (a cirrus.network.l3.model.RouterConfig as plain data)
    says, or remove it from the host (None). `stamp`: when the control side read it; the
    agent ignores a message older than the last it applied for the router."""

    router_id: str
    router: dict[str, Any] | None = None
    stamp: float = 0.0


@dataclass(frozen=True)
class SyncRoutersAll(Payload):
    """Run exactly these routers: the agent's whole L3 state (on its full reports)."""

    routers: list[dict[str, Any]]
    stamp: float = 0.0


@dataclass(frozen=True)
class ConsoleOutput(Payload):
    uuid: str
    length: int | None = None


@dataclass(frozen=True)
class InstanceDiagnostics(Payload):
    """The VM's diagnostics in Nova's standard (2.48) format, as plain data (issue 13)."""

    uuid: str


# ---- multi-host L2 (issue 14, l2)
@dataclass(frozen=True)
class NetworkPeers(Payload):
    """The other hosts of the agent's VXLAN networks (cirrus.network.l2pop): network id ->
    [NetworkPeer.to_dict()]. Each listed network's forwarding database becomes exactly its
    list; `full`: every network not listed has no peer (the whole state of the host, sent
    when its agent starts and periodically)."""

    networks: dict[str, list[dict[str, Any]]]
    full: bool = False
    # When the sender read the views (time.time()): an agent ignores, per network, a view
    # older than one it applied already (casts may arrive out of order).
    taken_at: float | None = None


# ---- security groups (issue 14, sg)
@dataclass(frozen=True)
class UpdateSecurityGroups(Payload):
    """The host's whole filter state: its bound ports, their groups' rules and the members
    of the groups those rules name (a cirrus.network.port_filter.HostFilterState)."""

    state: dict[str, Any]


# ---- volumes (issue 15)
@dataclass(frozen=True)
class AttachVolume(Payload):
    """Attach a volume to the VM (a call: the answer is {"device": target})."""

    uuid: str
    volume: dict[str, Any]  # a cirrus.virt.spec.VolumeDevice.to_dict()


@dataclass(frozen=True)
class DetachVolume(Payload):
    uuid: str
    volume_id: str
    timeout: float | None = None  # how long the guest has to let go (None: the driver's)


@dataclass(frozen=True)
class ExtendAttachedVolume(Payload):
    """Tell the VM an attached volume grew (online extend)."""

    uuid: str
    volume_id: str
    new_size: int


MESSAGES: dict[str, type[Payload]] = {
    "spawn": SpawnInstance,
    "destroy": DestroyInstance,
    "power": PowerInstance,
    "attach_interface": AttachInterface,
    "detach_interface": DetachInterface,
    "snapshot": SnapshotInstance,
    "shelve": ShelveInstance,
    "offload": OffloadInstance,
    "prepare_resize": PrepareResize,
    "resize": ResizeInstance,
    "list_instances": ListInstances,
    "console_output": ConsoleOutput,
    "rebuild": RebuildInstance,  # comp-a
    "diagnostics": InstanceDiagnostics,  # comp-x
    "update_network_peers": NetworkPeers,  # l2
    "update_security_groups": UpdateSecurityGroups,  # sg
    "sync_dhcp": SyncDhcp,  # dhcp
    "sync_dhcp_all": SyncDhcpAll,  # dhcp
    "sync_router": SyncRouter,  # l3
    "sync_routers_all": SyncRoutersAll,  # l3
    "attach_volume": AttachVolume,  # issue 15
    "detach_volume": DetachVolume,  # issue 15
    "extend_volume": ExtendAttachedVolume,  # issue 15
}


class AgentHandler(Protocol):
    """What an agent serves: one method per message, taking its decoded payload."""

    def spawn(self, ctx: RequestContext, payload: SpawnInstance) -> None: ...
    def destroy(self, ctx: RequestContext, payload: DestroyInstance) -> object: ...
    def power(self, ctx: RequestContext, payload: PowerInstance) -> None: ...
    def attach_interface(self, ctx: RequestContext, payload: AttachInterface) -> object: ...
    def detach_interface(self, ctx: RequestContext, payload: DetachInterface) -> object: ...
    def snapshot(self, ctx: RequestContext, payload: SnapshotInstance) -> None: ...
    def shelve(self, ctx: RequestContext, payload: ShelveInstance) -> None: ...
    def offload(self, ctx: RequestContext, payload: OffloadInstance) -> object: ...
    def prepare_resize(self, ctx: RequestContext, payload: PrepareResize) -> object: ...
    def resize(self, ctx: RequestContext, payload: ResizeInstance) -> None: ...
    def list_instances(self, ctx: RequestContext, payload: ListInstances) -> dict[str, int]: ...
    def console_output(self, ctx: RequestContext, payload: ConsoleOutput) -> dict[str, str]: ...
    def rebuild(self, ctx: RequestContext, payload: RebuildInstance) -> None: ...
    def diagnostics(self, ctx: RequestContext, payload: InstanceDiagnostics) -> dict[str, Any]: ...
    def update_network_peers(self, ctx: RequestContext, payload: NetworkPeers) -> None: ...
    def update_security_groups(self, ctx: RequestContext,
                               payload: UpdateSecurityGroups) -> None: ...
    def sync_dhcp(self, ctx: RequestContext, payload: SyncDhcp) -> None: ...
    def sync_dhcp_all(self, ctx: RequestContext, payload: SyncDhcpAll) -> None: ...
    def sync_router(self, ctx: RequestContext, payload: SyncRouter) -> None: ...
    def sync_routers_all(self, ctx: RequestContext, payload: SyncRoutersAll) -> None: ...
    def attach_volume(self, ctx: RequestContext, payload: AttachVolume) -> dict[str, Any]: ...
    def detach_volume(self, ctx: RequestContext, payload: DetachVolume) -> object: ...
    def extend_volume(self, ctx: RequestContext, payload: ExtendAttachedVolume) -> object: ...


def endpoints(handler: AgentHandler) -> dict[str, BusHandler]:
    """The handlers an agent subscribes to its topic with."""
    return _endpoints(MESSAGES, handler)


class AgentAPI:
    """The client side: one method per message to the agent of `host`."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def _cast(self, ctx: RequestContext, host: str, method: str, payload: Payload) -> None:
        self.bus.cast(ctx, agent_topic(host), method, payload.to_wire())

    def _call(self, ctx: RequestContext, host: str, method: str, payload: Payload,
              timeout: float | None) -> Any:
        return self.bus.call(ctx, agent_topic(host), method, payload.to_wire(), timeout=timeout)

    def spawn(self, ctx: RequestContext, host: str, spec: Mapping[str, Any],
              task: str | None = None) -> None:
        self._cast(ctx, host, "spawn", SpawnInstance(spec=dict(spec), task=task))

    def destroy(self, ctx: RequestContext, host: str, uuid: str, *,
                timeout: float | None = None) -> None:
        """Cast; with `timeout`, wait that long for the agent to have done it (BusTimeout,
        RemoteError otherwise)."""
        if timeout is None:
            self._cast(ctx, host, "destroy", DestroyInstance(uuid=uuid))
        else:
            self._call(ctx, host, "destroy", DestroyInstance(uuid=uuid), timeout)

    def power(self, ctx: RequestContext, host: str, uuid: str, task: str, action: str) -> None:
        self._cast(ctx, host, "power", PowerInstance(uuid=uuid, task=task, action=action))

    def attach_interface(self, ctx: RequestContext, host: str, uuid: str,
                         nic: Mapping[str, Any], timeout: float | None = None) -> None:
        """Plug `nic` into the host's dataplane and the VM; returns once it is there."""
        self._call(ctx, host, "attach_interface", AttachInterface(uuid=uuid, nic=dict(nic)),
                   timeout)

    def detach_interface(self, ctx: RequestContext, host: str, uuid: str,
                         nic: Mapping[str, Any], timeout: float | None = None) -> None:
        self._call(ctx, host, "detach_interface", DetachInterface(uuid=uuid, nic=dict(nic)),
                   timeout)

    def snapshot(self, ctx: RequestContext, host: str, uuid: str, image_id: str,
                 file: str) -> None:
        self._cast(ctx, host, "snapshot",
                   SnapshotInstance(uuid=uuid, image_id=image_id, file=file, host=host))

    def shelve(self, ctx: RequestContext, host: str, uuid: str, image_id: str,
               file: str) -> None:
        self._cast(ctx, host, "shelve", ShelveInstance(uuid=uuid, image_id=image_id, file=file))

    def offload(self, ctx: RequestContext, host: str, uuid: str, timeout: float) -> None:
        """Wait for the VM to be gone from `host` (BusTimeout, RemoteError otherwise)."""
        self._call(ctx, host, "offload", OffloadInstance(uuid=uuid), timeout)

    def prepare_resize(self, ctx: RequestContext, host: str, uuid: str, timeout: float) -> None:
        self._call(ctx, host, "prepare_resize", PrepareResize(uuid=uuid), timeout)

    def resize(self, ctx: RequestContext, host: str, spec: Mapping[str, Any], task: str,
               power_on: bool) -> None:
        self._cast(ctx, host, "resize",
                   ResizeInstance(spec=dict(spec), task=task, power_on=power_on))

    def list_instances(self, ctx: RequestContext, host: str,
                       timeout: float | None = None) -> dict[str, int]:
        """uuid -> power state of every VM the host has."""
        present = self._call(ctx, host, "list_instances", ListInstances(), timeout)
        return {str(uuid): int(power) for uuid, power in dict(present).items()}

    def console_output(self, ctx: RequestContext, host: str, uuid: str, length: int | None,
                       timeout: float = CONSOLE_TIMEOUT) -> str:
        reply = self._call(ctx, host, "console_output", ConsoleOutput(uuid=uuid, length=length),
                           timeout)
        return str(reply["output"])

    def rebuild(self, ctx: RequestContext, host: str, spec: Mapping[str, Any], task: str,
                stopped: bool) -> None:
        self._cast(ctx, host, "rebuild",
                   RebuildInstance(spec=dict(spec), task=task, stopped=stopped))

    def diagnostics(self, ctx: RequestContext, host: str, uuid: str,
                    timeout: float = CONSOLE_TIMEOUT) -> dict[str, Any]:
        return dict(self._call(ctx, host, "diagnostics", InstanceDiagnostics(uuid=uuid), timeout))

    def update_network_peers(self, ctx: RequestContext, host: str,
                             networks: Mapping[str, list[dict[str, Any]]],
                             full: bool = False, taken_at: float | None = None) -> None:
        self._cast(ctx, host, "update_network_peers",
                   NetworkPeers(networks={k: list(v) for k, v in networks.items()}, full=full,
                                taken_at=taken_at))

    def update_security_groups(self, ctx: RequestContext, host: str,
                               state: Mapping[str, Any]) -> None:
        """Cast the host's filter state; the agent applies it (nftables) at once."""
        self._cast(ctx, host, "update_security_groups", UpdateSecurityGroups(state=dict(state)))

    # ---- DHCP (issue 14, dhcp)
    def sync_dhcp(self, ctx: RequestContext, host: str, network_id: str,
                  network: Mapping[str, Any] | None, stamp: float = 0.0) -> None:
        self._cast(ctx, host, "sync_dhcp", SyncDhcp(
            network_id=network_id, network=dict(network) if network is not None else None,
            stamp=stamp))

    def sync_dhcp_all(self, ctx: RequestContext, host: str, networks: list[dict[str, Any]],
                      stamp: float = 0.0) -> None:
        self._cast(ctx, host, "sync_dhcp_all", SyncDhcpAll(networks=list(networks),
                                                           stamp=stamp))

    # ---- routers (issue 14, l3)
    def sync_router(self, ctx: RequestContext, host: str, router_id: str,
                    router: Mapping[str, Any] | None, stamp: float = 0.0) -> None:
        self._cast(ctx, host, "sync_router", SyncRouter(
            router_id=router_id, router=dict(router) if router is not None else None,
            stamp=stamp))

    def sync_routers_all(self, ctx: RequestContext, host: str, routers: list[dict[str, Any]],
                         stamp: float = 0.0) -> None:
        self._cast(ctx, host, "sync_routers_all", SyncRoutersAll(routers=list(routers),
                                                                 stamp=stamp))

    # ---- volumes (issue 15)
    def attach_volume(self, ctx: RequestContext, host: str, uuid: str,
                      volume: Mapping[str, Any], timeout: float | None = None) -> str:
        """Attach the volume to the VM; returns its target device ("vdb")."""
        reply = self._call(ctx, host, "attach_volume",
                           AttachVolume(uuid=uuid, volume=dict(volume)), timeout)
        return str(reply["device"])

    def detach_volume(self, ctx: RequestContext, host: str, uuid: str, volume_id: str,
                      detach_timeout: float | None = None,
                      timeout: float | None = None) -> None:
        self._call(ctx, host, "detach_volume",
                   DetachVolume(uuid=uuid, volume_id=volume_id, timeout=detach_timeout),
                   timeout)

    def extend_volume(self, ctx: RequestContext, host: str, uuid: str, volume_id: str,
                      new_size: int, timeout: float | None = None) -> None:
        self._call(ctx, host, "extend_volume",
                   ExtendAttachedVolume(uuid=uuid, volume_id=volume_id, new_size=new_size),
                   timeout)

    def discard(self, host: str) -> None:
        """Forget the host's queue for good, with the work waiting on it (a removed host)."""
        self.bus.discard(agent_topic(host))

