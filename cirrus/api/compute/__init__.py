"""Nova v2.1 subset, served under /compute (and under /compute/v2 as v2.0)."""

from __future__ import annotations

import importlib

from starlette.routing import Route

from cirrus.api.compute.microversion import negotiate
from cirrus.api.framework import make_routes

# Each module exposes ROUTES: a list of (methods, path, handler[, options]) rows.
MODULES = ("versions", "flavors", "keypairs", "limits", "quotas", "quota_classes", "hosts",
           "services", "servers", "server_tags", "server_actions", "instance_actions",
           "interfaces", "usage", "images", "security_groups", "legacy", "migrations",
           "audit", "diagnostics", "external_events", "floating_ips",
           "volume_attachments")  # issue 15


def routes() -> list[Route]:
    table: list = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"cirrus.api.compute.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cirrus.api.compute.{name}":
                raise
            continue
        table.extend(module.ROUTES)
    # v2.0 (Nova's legacy endpoint): every v2.1 route again under /v2, served as 2.1.
    table.extend((row[0], "/v2/" + row[1][len("/v2.1/"):], *row[2:])
                 for row in list(table) if row[1].startswith("/v2.1/") and row[1] != "/v2.1/")
    return make_routes(table, service="compute", negotiate=negotiate)
