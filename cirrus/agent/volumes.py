"""The agent's volume messages (issue 15): attach, detach and grow a volume of a VM on this
host through the virt driver (cirrus.virt: `attach_volume`, `detach_volume`,
`extend_volume`), one VM's work at a time (its lock, as for the other instance work)."""

from __future__ import annotations

from cirrus.agent import rpcapi
from cirrus.agent.base import Received, log
from cirrus.agent.instances import InstanceHandlers
from cirrus.context import RequestContext


class VolumeHandlers(InstanceHandlers):
    def attach_volume(self, ctx: RequestContext,
                      payload: rpcapi.AttachVolume | Received) -> dict:
        request = rpcapi.AttachVolume.coerce(payload)
        with self._lock(request.uuid):
            device = self.driver.attach_volume(request.uuid, request.volume)
        log.info("attached volume %s to %s on %s as %s", request.volume.get("volume_id"),
                 request.uuid, self.host, device)
        return {"device": device}

    def detach_volume(self, ctx: RequestContext,
                      payload: rpcapi.DetachVolume | Received) -> dict:
        request = rpcapi.DetachVolume.coerce(payload)
        with self._lock(request.uuid):
            self.driver.detach_volume(request.uuid, request.volume_id, timeout=request.timeout)
        log.info("detached volume %s from %s on %s", request.volume_id, request.uuid,
                 self.host)
        return {"detached": request.volume_id}

    def extend_volume(self, ctx: RequestContext,
                      payload: rpcapi.ExtendAttachedVolume | Received) -> dict:
        request = rpcapi.ExtendAttachedVolume.coerce(payload)
        with self._lock(request.uuid):
            self.driver.extend_volume(request.uuid, request.volume_id, request.new_size)
        log.info("volume %s of %s on %s extended to %d GiB", request.volume_id, request.uuid,
                 self.host, request.new_size)
        return {"extended": request.volume_id}
