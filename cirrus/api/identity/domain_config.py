"""Domain configuration (/v3/domains/{id}/config[/{group}[/{option}]] and
/v3/domains/config[/{group}[/{option}]]/default): admin only. Stored, not acted on: Cirrus has
no LDAP identity backend (cirrus/identity/service/domain_config.py)."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import schemas_extra as schemas
from cirrus.api.identity.common import _authorize
from cirrus.api.validation import validate
from cirrus.errors import BadRequest
from cirrus.identity.policy import ADMIN
from cirrus.identity.service import domain_config as dc


def _config(req: ApiRequest, schema: dict) -> dict:
    body = req.json
    validate(schema, schemas.redacted(body))
    return body["config"]


def show_default(req: ApiRequest, group: str | None = None, option: str | None = None) -> dict:
    _authorize(req, ADMIN, "get_domain_config_default")
    return {"config": dc.default_config(group, option)}


def show_default_group(req: ApiRequest, group: str) -> dict:
    return show_default(req, group)


def show_default_option(req: ApiRequest, group: str, option: str) -> dict:
    return show_default(req, group, option)


def put_config(req: ApiRequest, domain_id: str) -> Reply:
    _authorize(req, ADMIN, "create_domain_config")
    config = _config(req, schemas.domain_config)
    settings = req.cloud.settings
    stored, existed = req.cloud.db.run(lambda s: dc.replace_config(s, settings, domain_id,
                                                                   config))
    return Reply(200 if existed else 201, {"config": stored})


def show_config(req: ApiRequest, domain_id: str, group: str | None = None,
                option: str | None = None) -> dict:
    _authorize(req, ADMIN, "get_domain_config")
    with req.cloud.db.reader() as s:
        return {"config": dc.get_config(s, domain_id, group, option)}


def show_group(req: ApiRequest, domain_id: str, group: str) -> dict:
    return show_config(req, domain_id, group)


def show_option(req: ApiRequest, domain_id: str, group: str, option: str) -> dict:
    return show_config(req, domain_id, group, option)


def update_config(req: ApiRequest, domain_id: str, group: str | None = None,
                  option: str | None = None) -> dict:
    _authorize(req, ADMIN, "update_domain_config")
    if option is not None:
        config = _config(req, schemas.domain_config_option)
        if set(config) != {option}:
            raise BadRequest(f"Invalid input for field/attribute config: trying to update "
                             f"option {option} in group {group}, so that, and only that, "
                             "option must be specified in the config.")
    else:
        config = _config(req, schemas.domain_config)
        if group is not None and set(config) != {group}:
            raise BadRequest(f"Invalid input for field/attribute config: trying to update "
                             f"group {group}, so that, and only that, group must be "
                             "specified in the config.")
    settings = req.cloud.settings
    stored = req.cloud.db.run(lambda s: dc.update_config(s, settings, domain_id, config,
                                                         group, option))
    return {"config": stored}


def update_group(req: ApiRequest, domain_id: str, group: str) -> dict:
    return update_config(req, domain_id, group)


def update_option(req: ApiRequest, domain_id: str, group: str, option: str) -> dict:
    return update_config(req, domain_id, group, option)


def delete_config(req: ApiRequest, domain_id: str, group: str | None = None,
                  option: str | None = None) -> None:
    _authorize(req, ADMIN, "delete_domain_config")
    req.cloud.db.run(lambda s: dc.delete_config(s, domain_id, group, option))


def delete_group(req: ApiRequest, domain_id: str, group: str) -> None:
    delete_config(req, domain_id, group)


def delete_option(req: ApiRequest, domain_id: str, group: str, option: str) -> None:
    delete_config(req, domain_id, group, option)


_D = "/v3/domains/{domain_id}/config"
ROUTES: list = [
    ("GET", "/v3/domains/config/default", show_default),
    # Keystone's spelling: the group (and option) before "default"
    ("GET", "/v3/domains/config/{group}/default", show_default_group),
    ("GET", "/v3/domains/config/{group}/{option}/default", show_default_option),
    ("PUT", _D, put_config),
    ("GET", _D, show_config),
    ("PATCH", _D, update_config),
    ("DELETE", _D, delete_config),
    ("GET", _D + "/{group}", show_group),
    ("PATCH", _D + "/{group}", update_group),
    ("DELETE", _D + "/{group}", delete_group),
    ("GET", _D + "/{group}/{option}", show_option),
    ("PATCH", _D + "/{group}/{option}", update_option),
    ("DELETE", _D + "/{group}/{option}", delete_option),
]
