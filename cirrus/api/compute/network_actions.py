"""POST /servers/{id}/action {"injectNetworkInfo": null}: admin only, 202.

On Cirrus's drivers (fake and libvirt) it rewrites nothing: the guest's network comes from the
config drive and metadata written at build and does not change under it (see
cirrus.compute.networking.check_inject_network_info). The server is checked and the action
accepted, as Nova's libvirt driver accepts and ignores it.
"""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.compute import networking
from cirrus.identity.policy import ADMIN, authorize


def inject_network_info(req: ApiRequest, server_id: str, body: dict) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-admin-actions:inject_network_info")
    with req.cloud.db.reader() as s:
        networking.check_inject_network_info(s, req.ctx, server_id)
    return Reply(202)
