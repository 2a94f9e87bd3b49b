"""Keystone v3 subset, served under /identity.

Every handler reads in the same order: authorise, validate, act (one call into
cirrus.identity.service), serialise. Rights taken away (unassign, disable, delete, password
change) revoke the affected tokens once the change has committed.
"""

from __future__ import annotations

import importlib

from starlette.routing import Route

from cirrus.api.framework import make_routes

# Each module exposes ROUTES: a list of (methods, path, handler[, options]) rows.
MODULES = ("versions", "tokens", "catalog", "domains", "projects", "users", "roles",
           "assignments", "groups", "inferences", "system", "inherit", "app_credentials",
           "project_tree", "credentials", "policies", "domain_config", "endpoint_groups")


def routes() -> list[Route]:
    table: list = []
    for name in MODULES:
        table.extend(importlib.import_module(f"cirrus.api.identity.{name}").ROUTES)
    return make_routes(table, service="identity")
