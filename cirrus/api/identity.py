"""Keystone v3 subset, served under /identity."""

from cirrus.api.framework import make_routes

ROUTES: list = []


def routes():  # noqa: ANN201
    return make_routes(ROUTES, service="identity")
