"""The volume role's bus contract: its topic, its messages, and the client the API (and the
volume role's own sweeper) use to reach it.

Each message names records the API has written in a transitional state (creating,
deleting, extending); the volume role does the backend work and moves them on. Version 1
of each payload is the plain dict with the same fields (the first form of these messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cirrus.bus import Bus
from cirrus.bus.contract import BusHandler, Payload
from cirrus.bus.contract import endpoints as _endpoints
from cirrus.context import RequestContext

VOLUME_TOPIC = "volume"


@dataclass(frozen=True)
class CreateVolume(Payload):
    """Make the backend data of a volume recorded `creating` (empty, or from its image,
    source volume or snapshot, as the record says)."""

    volume_id: str


@dataclass(frozen=True)
class DeleteVolume(Payload):
    """Delete a volume recorded `deleting`, after the snapshots listed (a cascade)."""

    volume_id: str
    snapshot_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtendVolume(Payload):
    """Grow a volume recorded `extending` to `new_size` GiB."""

    volume_id: str
    new_size: int


@dataclass(frozen=True)
class CreateSnapshot(Payload):
    snapshot_id: str


@dataclass(frozen=True)
class DeleteSnapshot(Payload):
    snapshot_id: str


@dataclass(frozen=True)
class InitializeConnection(Payload):
    """How a hypervisor opens the volume (a call; issue 15's attachments): the answer is a
    backend Connection as {"driver_volume_type", "data"}."""

    volume_id: str


@dataclass(frozen=True)
class ExtendAttached(Payload):
    """Grow an attached volume in its backend where the backend must (a call; the file
    backend's volume is grown by the hypervisor that holds it). Issue 15."""

    volume_id: str
    new_size: int


@dataclass(frozen=True)
class UploadImage(Payload):
    """Copy a volume recorded `uploading` into the queued image `image_id`
    (os-volume_upload_image): the image goes saving -> active, the volume back."""

    volume_id: str
    image_id: str
    disk_format: str = "raw"


@dataclass(frozen=True)
class RevertVolume(Payload):
    """Revert a volume recorded `reverting` to its snapshot recorded `restoring` (3.40)."""

    volume_id: str
    snapshot_id: str


MESSAGES: dict[str, type[Payload]] = {
    "upload_image": UploadImage,  # os-volume_upload_image
    "revert_volume": RevertVolume,  # revert (3.40)
    "extend_attached": ExtendAttached,  # attachments
    "initialize_connection": InitializeConnection,  # attachments
    "create_volume": CreateVolume,
    "delete_volume": DeleteVolume,
    "extend_volume": ExtendVolume,
    "create_snapshot": CreateSnapshot,
    "delete_snapshot": DeleteSnapshot,
}


class VolumeHandler(Protocol):
    def create_volume(self, ctx: RequestContext, payload: CreateVolume) -> None: ...

    def delete_volume(self, ctx: RequestContext, payload: DeleteVolume) -> None: ...

    def extend_volume(self, ctx: RequestContext, payload: ExtendVolume) -> None: ...

    def create_snapshot(self, ctx: RequestContext, payload: CreateSnapshot) -> None: ...

    def delete_snapshot(self, ctx: RequestContext, payload: DeleteSnapshot) -> None: ...

    def initialize_connection(self, ctx: RequestContext,
                              payload: InitializeConnection) -> dict[str, Any]: ...

    def extend_attached(self, ctx: RequestContext, payload: ExtendAttached) -> dict[str, Any]: ...

    def upload_image(self, ctx: RequestContext, payload: UploadImage) -> None: ...

    def revert_volume(self, ctx: RequestContext, payload: RevertVolume) -> None: ...


def endpoints(handler: VolumeHandler) -> dict[str, BusHandler]:
    """The handlers the volume role subscribes to VOLUME_TOPIC with."""
    return _endpoints(MESSAGES, handler)


class VolumeAPI:
    """The client side: one method per message (all casts: the records say the outcome)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def _cast(self, ctx: RequestContext, method: str, payload: Payload) -> None:
        self.bus.cast(ctx, VOLUME_TOPIC, method, payload.to_wire())

    def create_volume(self, ctx: RequestContext, volume_id: str) -> None:
        self._cast(ctx, "create_volume", CreateVolume(volume_id=volume_id))

    def delete_volume(self, ctx: RequestContext, volume_id: str,
                      snapshot_ids: tuple[str, ...] = ()) -> None:
        self._cast(ctx, "delete_volume", DeleteVolume(volume_id=volume_id,
                                                      snapshot_ids=tuple(snapshot_ids)))

    def extend_volume(self, ctx: RequestContext, volume_id: str, new_size: int) -> None:
        self._cast(ctx, "extend_volume", ExtendVolume(volume_id=volume_id, new_size=new_size))

    def create_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        self._cast(ctx, "create_snapshot", CreateSnapshot(snapshot_id=snapshot_id))

    def delete_snapshot(self, ctx: RequestContext, snapshot_id: str) -> None:
        self._cast(ctx, "delete_snapshot", DeleteSnapshot(snapshot_id=snapshot_id))

    def upload_image(self, ctx: RequestContext, volume_id: str, image_id: str,
                     disk_format: str) -> None:
        self._cast(ctx, "upload_image", UploadImage(volume_id=volume_id, image_id=image_id,
                                                    disk_format=disk_format))

    def revert_volume(self, ctx: RequestContext, volume_id: str, snapshot_id: str) -> None:
        self._cast(ctx, "revert_volume", RevertVolume(volume_id=volume_id,
                                                      snapshot_id=snapshot_id))

    def initialize_connection(self, ctx: RequestContext, volume_id: str,
                              timeout: float | None = None) -> dict[str, Any]:
        """The volume's connection info (a call: BusTimeout, RemoteError with the reason)."""
        reply = self.bus.call(ctx, VOLUME_TOPIC, "initialize_connection",
                              InitializeConnection(volume_id=volume_id).to_wire(),
                              timeout=timeout)
        return {"driver_volume_type": str(reply["driver_volume_type"]),
                "data": dict(reply.get("data") or {})}

    def extend_attached(self, ctx: RequestContext, volume_id: str, new_size: int,
                        timeout: float | None = None) -> bool:
        """Grow the attached volume in its backend; True if the backend resized it."""
        reply = self.bus.call(ctx, VOLUME_TOPIC, "extend_attached",
                              ExtendAttached(volume_id=volume_id, new_size=new_size).to_wire(),
                              timeout=timeout)
        return bool(reply.get("resized"))
