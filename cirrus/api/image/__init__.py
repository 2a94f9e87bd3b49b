"""Glance v2 subset, served under /image.

Metadata routes are plain handlers run by the framework; the two data routes (upload and
download) are raw async endpoints so that image bytes stream between the socket and the
file store chunk by chunk and are never held in memory whole.
"""

from __future__ import annotations

import importlib

from starlette.routing import Route

from cirrus.api.framework import make_routes
from cirrus.api.image.common import SERVICE
from cirrus.api.image.data import _data_routes

# Each module exposes ROUTES: a list of (methods, path, handler[, options]) rows.
MODULES = ("versions", "images", "members", "imports", "info")


def routes() -> list[Route]:
    table: list = []
    for name in MODULES:
        table.extend(importlib.import_module(f"cirrus.api.image.{name}").ROUTES)
    return make_routes(table, service=SERVICE) + _data_routes()
