"""Cirrus's own admin API under /cirrus/v1 (not an OpenStack API): run-time log level and a
health check for load balancers. Errors use the identity (Keystone) error shape.

PUT /cirrus/v1/log-level changes the level in the process that serves it at once, then fans
the change out on the bus so every other role process (api, conductor, scheduler, agent)
changes too. The change lasts until the process restarts; `log_level` in the config file
is the lasting setting.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from starlette.routing import Route

from cirrus.api.framework import ApiRequest, make_routes
from cirrus.api.validation import validate
from cirrus.errors import BadRequest, ServiceUnavailable
from cirrus.identity.policy import ADMIN, authorize
from cirrus.observe import schemas
from cirrus.observe.logging import ADMIN_TOPIC, check_level, log_levels, set_log_level

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
        req.cloud.bus.fanout(req.ctx, ADMIN_TOPIC, "set_log_level",
                             {"level": level, "logger": logger})
        propagated = True
    except Exception:  # this process changed; the others keep theirs until asked again
        log.exception("could not send the log level change to the other processes")
        propagated = False
    return {**log_levels(), "propagated": propagated}


def health(req: ApiRequest) -> dict:
    """200 while this API process can reach the database; 503 otherwise."""
    try:
        with req.cloud.db.reader() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        raise ServiceUnavailable("The database is unreachable from this API process.") from exc
    return {"status": "ok"}


ROUTES = [
    ("GET", "/v1/log-level", get_log_level),
    ("PUT", "/v1/log-level", put_log_level),
    ("GET", "/v1/health", health, {"auth": False}),
]


def routes() -> list[Route]:
    return make_routes(ROUTES, service="identity")
