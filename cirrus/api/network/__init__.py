"""Neutron v2.0 subset, served under /network (docs/networking.md lists what is there).

Each module exposes ROUTES: (methods, path, handler[, options]) rows. Handlers raise
cirrus.errors; here they become Neutron's error body, with the Neutron error type a
networking error carries (`error_type`, e.g. "IpAddressGenerationFailure").
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from starlette.routing import Route

from cirrus.api.errors import error_response
from cirrus.api.framework import ApiRequest, make_routes
from cirrus.errors import CirrusError

SERVICE = "network"
MODULES = ("versions", "networks", "subnets", "ports", "security_groups", "quotas",
           "auto_topology", "tags", "empty_lists", "routers", "floating_ips",
           "subnetpools")


def neutron_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Answer a handler's domain error with Neutron's body and type (5xx are left to the
    framework, which logs them)."""

    @functools.wraps(handler)
    def run(req: ApiRequest, **params: Any) -> Any:
        try:
            return handler(req, **params)
        except CirrusError as exc:
            if exc.status >= 500 and getattr(exc, "error_type", None) is None:
                raise  # typed 5xx (NoNetworkAvailable) keep Neutron's type
            return error_response(SERVICE, exc.status, exc.message, exc.headers,
                                  getattr(exc, "error_type", None))

    return run


def routes() -> list[Route]:
    table: list = []
    for name in MODULES:
        module = importlib.import_module(f"cirrus.api.network.{name}")
        for row in module.ROUTES:
            table.append((row[0], row[1], neutron_errors(row[2]), *row[3:]))
    return make_routes(table, service=SERVICE)
