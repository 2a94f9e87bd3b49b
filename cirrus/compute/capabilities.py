"""What the virt driver of an instance's host can do, as its agent last reported
(cirrus.virt.driver.DriverCapabilities, kept in ComputeNode.capabilities): the API and the
conductor refuse an action the driver cannot carry out with a 409 that says so."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import ComputeNode, Instance
from cirrus.errors import Conflict

# A capability's meaning in a refusal ("... cannot <this>").
DOING = {
    "hot_plug_nic": "hot-plug network interfaces",
    "snapshot": "snapshot servers",
    "balloon": "change a server's memory while it runs",
    "volume_attach": "attach volumes",
}


def host_can(s: Session, host: str | None, capability: str) -> bool:
    """Whether `host`'s driver can; a host that never reported capabilities (an agent from
    before they were reported) is taken to, as it did before."""
    if not host:
        return True
    reported = s.scalar(select(ComputeNode.capabilities).where(ComputeNode.host == host)
                        .limit(1))
    if not reported or capability not in reported:
        return True
    return bool(reported[capability])


def require(s: Session, inst: Instance, capability: str, action: str) -> None:
    """Conflict (409) when the driver of `inst`'s host cannot `capability`, for `action`."""
    if not host_can(s, inst.host, capability):
        raise Conflict(f"Cannot '{action}' instance {inst.uuid}: the virt driver of its host "
                       f"cannot {DOING.get(capability, capability)}.")
