"""Nova v2.1 subset, served under /compute."""

from __future__ import annotations

import importlib

from starlette.routing import Route

from cirrus.api.compute.microversion import negotiate
from cirrus.api.framework import make_routes

# Each module exposes ROUTES: a list of (methods, path, handler[, options]) rows.
MODULES = ("versions", "flavors", "keypairs", "limits", "quotas", "hosts", "servers",
           "server_actions", "instance_actions", "interfaces", "security_groups", "legacy",
           "audit", "diagnostics", "external_events")


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
    return make_routes(table, service="compute", negotiate=negotiate)
