"""The conductor's bus contract: its topic, its messages, and the client the API and the
agents use to reach it.

Each message's payload is a frozen dataclass (cirrus.bus.contract); version 1 of each is
the unversioned dict sent before the contracts, with the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cirrus.bus import Bus
from cirrus.bus.contract import BusHandler, Payload
from cirrus.bus.contract import endpoints as _endpoints
from cirrus.context import RequestContext

CONDUCTOR_TOPIC = "conductor"


@dataclass(frozen=True)
class BuildInstances(Payload):
    """Build the instances the API recorded (task_state scheduling)."""

    uuids: tuple[str, ...]


@dataclass(frozen=True)
class SpawnResult(Payload):
    """An agent's answer to `spawn`."""

    uuid: str
    host: str
    ok: bool
    error: str | None = None
    details: str | None = None  # the traceback, for admins
    power_state: int | None = None
    task: str | None = None  # the spawn's `task` echoed: "unshelving" for an unshelve


@dataclass(frozen=True)
class DeleteInstance(Payload):
    uuid: str


@dataclass(frozen=True)
class AttachInterface(Payload):
    """Hot-plug a NIC (a call: the answer says it is done, or why not)."""

    uuid: str
    # A cirrus.compute.networking.parse_requested() value: "auto", "none" or the requests.
    request: str | tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class DetachInterface(Payload):
    uuid: str
    port_id: str


@dataclass(frozen=True)
class AttachVolume(Payload):
    """Attach the volume of a reserved attachment (a call: answered when it is attached,
    with {"device"}, or with why not; the attachment is then rolled back). Issue 15."""

    uuid: str
    attachment_id: str


@dataclass(frozen=True)
class DetachVolume(Payload):
    uuid: str
    attachment_id: str


@dataclass(frozen=True)
class ExtendAttachedVolume(Payload):
    """Grow an attached volume the API recorded `extending` (Cinder 3.42). Issue 15."""

    volume_id: str
    new_size: int


@dataclass(frozen=True)
class PowerAction(Payload):
    """Run the power task the API recorded (stop, start, reboot)."""

    uuid: str
    task: str


@dataclass(frozen=True)
class TaskResult(Payload):
    """An agent's answer to `power`."""

    uuid: str
    task: str
    ok: bool
    host: str | None = None
    error: str | None = None
    details: str | None = None
    power_state: int | None = None


@dataclass(frozen=True)
class SnapshotInstance(Payload):
    uuid: str
    image_id: str


@dataclass(frozen=True)
class SnapshotResult(Payload):
    """An agent's answer to `snapshot`: the staging `file` is written, or why not."""

    uuid: str
    image_id: str
    file: str
    ok: bool
    host: str | None = None
    error: str | None = None
    details: str | None = None


# ---- shelve (comp-b)
@dataclass(frozen=True)
class ShelveInstance(Payload):
    """Run the shelve the API recorded (task shelving) into the queued image `image_id`."""

    uuid: str
    image_id: str


@dataclass(frozen=True)
class ShelveResult(Payload):
    """An agent's answer to `shelve`: the VM is off and the staging `file` written, or why not."""

    uuid: str
    image_id: str
    file: str
    ok: bool
    host: str | None = None
    error: str | None = None
    details: str | None = None
    power_state: int | None = None


@dataclass(frozen=True)
class OffloadInstance(Payload):
    """Run the offload the API recorded (task shelving_offloading)."""

    uuid: str


@dataclass(frozen=True)
class UnshelveInstance(Payload):
    """Run the unshelve the API recorded (task unshelving)."""

    uuid: str


# ---- resize and cold migrate (comp-b)
@dataclass(frozen=True)
class ResizeRequest(Payload):
    """Run the resize or migrate the API recorded (task resize_prep, migration `migration`)."""

    uuid: str
    migration: str


@dataclass(frozen=True)
class ResizeResult(Payload):
    """An agent's answer to `resize`."""

    uuid: str
    host: str
    task: str
    ok: bool
    error: str | None = None
    details: str | None = None
    power_state: int | None = None


@dataclass(frozen=True)
class ResizeDecision(Payload):
    """Run the confirmResize or revertResize the API recorded."""

    uuid: str


@dataclass(frozen=True)
class AgentReport(Payload):
    """An agent's heartbeat; a full report adds capacity and every VM it has."""

    host: str
    stats: dict[str, Any] | None = None  # a cirrus.virt.driver.HostStats as plain data
    taken_at: float | None = None  # when the VM list was read (time.time())
    instances: dict[str, int] | None = None  # uuid -> power state
    startup: bool = False  # the first report after the agent started
    overlay_ip: str | None = None  # the host's VTEP (overlay_local_ip); l2, issue 14
    dhcp: bool = False  # the agent serves DHCP (dhcp_agent; cirrus.network.dhcp)
    l3: bool = False  # the agent runs routers (l3_agent; cirrus.network.l3)


@dataclass(frozen=True)
class RouterStatus(Payload):
    """What an L3 host made of a router it was told to run (issue 14, l3): `built` once its
    namespace is as the message said, else `error` says why. `stamp`: that message's."""

    host: str
    router_id: str
    built: bool
    error: str | None = None
    stamp: float = 0.0


MESSAGES: dict[str, type[Payload]] = {
    "build_instances": BuildInstances,
    "spawn_result": SpawnResult,
    "delete_instance": DeleteInstance,
    "attach_interface": AttachInterface,
    "detach_interface": DetachInterface,
    "attach_volume": AttachVolume,  # issue 15
    "detach_volume": DetachVolume,  # issue 15
    "extend_attached_volume": ExtendAttachedVolume,  # issue 15
    "power_action": PowerAction,
    "task_result": TaskResult,
    "snapshot_instance": SnapshotInstance,
    "snapshot_result": SnapshotResult,
    "agent_report": AgentReport,
    "shelve_instance": ShelveInstance,
    "shelve_result": ShelveResult,
    "offload_instance": OffloadInstance,
    "unshelve_instance": UnshelveInstance,
    "resize_instance": ResizeRequest,
    "resize_result": ResizeResult,
    "confirm_resize": ResizeDecision,
    "revert_resize": ResizeDecision,
    "router_status": RouterStatus,
}


class ConductorHandler(Protocol):
    """What the conductor serves. Its handlers still take each payload's `as_dict()`."""

    def build_instances(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def spawn_result(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def delete_instance(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def attach_interface(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def detach_interface(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def attach_volume(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def detach_volume(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def extend_attached_volume(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def power_action(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def task_result(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def snapshot_instance(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def snapshot_result(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def agent_report(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def shelve_instance(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def shelve_result(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def offload_instance(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def unshelve_instance(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def resize_instance(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def resize_result(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def confirm_resize(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def revert_resize(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...
    def router_status(self, ctx: RequestContext, payload: dict[str, Any]) -> object: ...


def endpoints(handler: ConductorHandler) -> dict[str, BusHandler]:
    """The handlers the conductor subscribes to CONDUCTOR_TOPIC with: each message checked
    and brought to the current version, then given to the handler as `as_dict()`."""
    return _endpoints(MESSAGES, handler, as_dict=True)


class ConductorAPI:
    """The client side: one method per message to the conductor."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def _cast(self, ctx: RequestContext, method: str, payload: Payload) -> None:
        self.bus.cast(ctx, CONDUCTOR_TOPIC, method, payload.to_wire())

    def _call(self, ctx: RequestContext, method: str, payload: Payload,
              timeout: float | None) -> Any:
        return self.bus.call(ctx, CONDUCTOR_TOPIC, method, payload.to_wire(), timeout=timeout)

    def build_instances(self, ctx: RequestContext, uuids: Sequence[str]) -> None:
        self._cast(ctx, "build_instances", BuildInstances(uuids=tuple(uuids)))

    def spawn_result(self, ctx: RequestContext, result: SpawnResult) -> None:
        self._cast(ctx, "spawn_result", result)

    def delete_instance(self, ctx: RequestContext, uuid: str) -> None:
        self._cast(ctx, "delete_instance", DeleteInstance(uuid=uuid))

    def attach_interface(self, ctx: RequestContext, uuid: str,
                         request: str | Sequence[Mapping[str, Any]],
                         timeout: float | None = None) -> str:
        """Make and plug the NIC `request` asks for; returns its port id once it is there
        (RemoteError with the conductor's refusal, BusTimeout)."""
        asked = request if isinstance(request, str) else tuple(dict(r) for r in request)
        reply = self._call(ctx, "attach_interface", AttachInterface(uuid=uuid, request=asked),
                           timeout)
        return str(reply["port_id"])

    def detach_interface(self, ctx: RequestContext, uuid: str, port_id: str,
                         timeout: float | None = None) -> None:
        self._call(ctx, "detach_interface", DetachInterface(uuid=uuid, port_id=port_id), timeout)

    def attach_volume(self, ctx: RequestContext, uuid: str, attachment_id: str,
                      timeout: float | None = None) -> str | None:
        """Attach the reserved attachment's volume; returns its device once attached."""
        reply = self._call(ctx, "attach_volume",
                           AttachVolume(uuid=uuid, attachment_id=attachment_id), timeout)
        device = reply.get("device") if isinstance(reply, dict) else None
        return str(device) if device else None

    def detach_volume(self, ctx: RequestContext, uuid: str, attachment_id: str,
                      timeout: float | None = None) -> None:
        self._call(ctx, "detach_volume", DetachVolume(uuid=uuid, attachment_id=attachment_id),
                   timeout)

    def extend_attached_volume(self, ctx: RequestContext, volume_id: str,
                               new_size: int) -> None:
        self._cast(ctx, "extend_attached_volume",
                   ExtendAttachedVolume(volume_id=volume_id, new_size=new_size))

    def power_action(self, ctx: RequestContext, uuid: str, task: str) -> None:
        self._cast(ctx, "power_action", PowerAction(uuid=uuid, task=task))

    def task_result(self, ctx: RequestContext, result: TaskResult) -> None:
        self._cast(ctx, "task_result", result)

    def snapshot_instance(self, ctx: RequestContext, uuid: str, image_id: str) -> None:
        self._cast(ctx, "snapshot_instance", SnapshotInstance(uuid=uuid, image_id=image_id))

    def snapshot_result(self, ctx: RequestContext, result: SnapshotResult) -> None:
        self._cast(ctx, "snapshot_result", result)

    def agent_report(self, ctx: RequestContext, report: AgentReport) -> None:
        self._cast(ctx, "agent_report", report)

    # ---- shelve (comp-b)
    def shelve_instance(self, ctx: RequestContext, uuid: str, image_id: str) -> None:
        self._cast(ctx, "shelve_instance", ShelveInstance(uuid=uuid, image_id=image_id))

    def shelve_result(self, ctx: RequestContext, result: ShelveResult) -> None:
        self._cast(ctx, "shelve_result", result)

    def offload_instance(self, ctx: RequestContext, uuid: str) -> None:
        self._cast(ctx, "offload_instance", OffloadInstance(uuid=uuid))

    def unshelve_instance(self, ctx: RequestContext, uuid: str) -> None:
        self._cast(ctx, "unshelve_instance", UnshelveInstance(uuid=uuid))

    # ---- resize and cold migrate (comp-b)
    def resize_instance(self, ctx: RequestContext, uuid: str, migration: str) -> None:
        self._cast(ctx, "resize_instance", ResizeRequest(uuid=uuid, migration=migration))

    def resize_result(self, ctx: RequestContext, result: ResizeResult) -> None:
        self._cast(ctx, "resize_result", result)

    def confirm_resize(self, ctx: RequestContext, uuid: str) -> None:
        self._cast(ctx, "confirm_resize", ResizeDecision(uuid=uuid))

    def revert_resize(self, ctx: RequestContext, uuid: str) -> None:
        self._cast(ctx, "revert_resize", ResizeDecision(uuid=uuid))

    # ---- routers (issue 14, l3)
    def router_status(self, ctx: RequestContext, status: RouterStatus) -> None:
        self._cast(ctx, "router_status", status)
