"""GET /servers/{id}/diagnostics (admin): the server's usage data from its host's virt
driver. Before 2.48 a free-form dict (the libvirt driver's old keys); from 2.48 Nova's
standard format."""

from __future__ import annotations

from cirrus.api.compute.microversion import Since
from cirrus.api.framework import ApiRequest
from cirrus.compute import diagnostics
from cirrus.identity.policy import ADMIN, authorize

STANDARD_FORMAT = Since("2.48")


def show_diagnostics(req: ApiRequest, server_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-server-diagnostics")
    diag = diagnostics.get_diagnostics(req.cloud, req.ctx, server_id)
    return diag if STANDARD_FORMAT(req) else diagnostics.legacy_view(diag)


ROUTES = [("GET", "/v2.1/servers/{server_id}/diagnostics", show_diagnostics)]
