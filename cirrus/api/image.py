"""Glance v2 subset, served under /image."""

from cirrus.api.framework import make_routes

ROUTES: list = []


def routes():  # noqa: ANN201
    return make_routes(ROUTES, service="image")
