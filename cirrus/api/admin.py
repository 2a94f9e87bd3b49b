"""Cirrus's own API under /cirrus/v1 (not an OpenStack API): run-time log level, a health
check for load balancers, and the network files a server's guest is given. Errors use the
identity (Keystone) error shape.

PUT /cirrus/v1/log-level changes the level in the process that serves it at once, then fans
the change out on the bus so every other role process (api, conductor, scheduler, agent)
changes too. The change lasts until the process restarts; `log_level` in the config file
is the lasting setting.
"""

from __future__ import annotations

import logging

from starlette.routing import Route

from cirrus.api import admin_schemas as schemas
from cirrus.api.framework import ApiRequest, make_routes
from cirrus.api.validation import validate
from cirrus.compute import instances, networking
from cirrus.errors import BadRequest, ServiceUnavailable
from cirrus.identity.policy import ADMIN, READ, authorize
from cirrus.network import render
from cirrus.observe.logging import check_level, log_levels, set_log_level
from cirrus.observe.rpcapi import AdminAPI
from cirrus.storage import images

log = logging.getLogger(__name__)


def get_log_level(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "cirrus:log_level:get")
    return log_levels()


def put_log_level(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "cirrus:log_level:set")
    body = req.json
    validate(schemas.set_log_level, body)
    logger = body.get("logger") or None
    try:
        level = check_level(body["level"], logger)
    except ValueError as exc:
        raise BadRequest(f"Invalid input for field/attribute level. {exc}") from exc
    set_log_level(level, logger)
    log.warning("log level of %s set to %s by user %s", logger or "the root logger", level,
                req.ctx.user_id)
    try:
        AdminAPI(req.cloud.bus).set_log_level(req.ctx, level, logger)
        propagated = True
    except Exception:  # this process changed; the others keep theirs until asked again
        log.exception("could not send the log level change to the other processes")
        propagated = False
    return {**log_levels(), "propagated": propagated}


def health(req: ApiRequest) -> dict:
    """200 while this API process can reach the database; 503 otherwise."""
    try:
        req.cloud.db.ping()
    except Exception as exc:
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        raise ServiceUnavailable("The database is unreachable from this API process.") from exc
    return {"status": "ok"}


def network_config(req: ApiRequest, server_id: str) -> dict:
    """The four static network files the server's guest is given, exactly as rendered for
    its config drive: `network_data` (network_data.json), `interfaces` (Debian),
    `udev_rules` and `netplan`. For the server's owner (any role) and admins."""
    authorize(req.ctx, READ, "cirrus:servers:network_config")
    with req.cloud.db.reader() as s:
        inst = instances.get(s, req.ctx, server_id)
        static = inject_ip(images.properties_of(s, inst.image_ref))
        nics = networking.build_nics(s, inst.nics)
    return render.render_all(nics, static=static)


def inject_ip(properties: dict | None) -> bool:
    """Does the image ask for static addresses on every NIC (`support_inject_ip`)?"""
    value = (properties or {}).get("support_inject_ip", False)
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


ROUTES = [
    ("GET", "/v1/servers/{server_id}/network-config", network_config),
    ("GET", "/v1/log-level", get_log_level),
    ("PUT", "/v1/log-level", put_log_level),
    ("GET", "/v1/health", health, {"auth": False}),
]


def routes() -> list[Route]:
    return make_routes(ROUTES, service="identity")
