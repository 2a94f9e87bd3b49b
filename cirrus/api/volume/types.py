"""Volume types: /v3/{project_id}/types (+ extra_specs, os-volume-type-access) over
cirrus.storage.volumes.types. Everyone reads the types it may use; admins change them."""

from __future__ import annotations

from typing import Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.api.volume import schemas
from cirrus.api.volume.common import READ, admin_only, allow, body_bool, parse_bool, parse_dict
from cirrus.api.volume.microversion import Since
from cirrus.api.volume.views import type_view
from cirrus.errors import BadRequest, NotFound
from cirrus.storage.volumes import types as service

EXTRA_SPECS_FILTER = Since("3.52")  # ?extra_specs={"k": "v"}


def _specs(raw: dict[str, Any]) -> dict[str, str]:
    return {k: (("True" if v else "False") if isinstance(v, bool) else str(v))
            for k, v in raw.items()}


def list_types(req: ApiRequest) -> dict:
    allow(req, READ, "volume_extension:types_manage:index")
    is_public = None
    text = req.query.get("is_public")
    if text is not None and text.lower() != "none":
        is_public = parse_bool("is_public", text)
    specs = None
    if req.query.get("extra_specs") and EXTRA_SPECS_FILTER(req):
        specs = parse_dict("extra_specs", req.query["extra_specs"])
    with req.cloud.db.reader() as s:
        rows = service.list_types(s, req.ctx, is_public=is_public, extra_specs=specs)
        return {"volume_types": [type_view(req, t) for t in rows]}


def show_type(req: ApiRequest, type_id: str) -> dict:
    allow(req, READ, "volume_extension:types_manage:show")
    with req.cloud.db.reader() as s:
        return {"volume_type": type_view(req, service.get_type(s, req.ctx, type_id))}


def show_default_type(req: ApiRequest) -> dict:
    allow(req, READ, "volume_extension:types_manage:show")
    return req.cloud.db.run(lambda s: {"volume_type": type_view(
        req, service.ensure_default_type(s))})


def create_type(req: ApiRequest) -> dict:
    admin_only(req, "volume_extension:types_manage:create")
    body = req.json
    validate(schemas.TYPE_CREATE, body)
    t = body["volume_type"]
    public = t.get("os-volume-type-access:is_public", t.get("is_public", True))
    is_public = body_bool("volume_type/is_public", public)
    view = req.cloud.db.run(lambda s: type_view(req, service.create_type(
        s, req.cloud.settings, t["name"].strip(), t.get("description"), is_public,
        _specs(t.get("extra_specs") or {}))))
    view.pop("qos_specs_id", None)  # not in a create's answer (Cinder's create view)
    return {"volume_type": view}


def update_type(req: ApiRequest, type_id: str) -> dict:
    admin_only(req, "volume_extension:types_manage:update")
    body = req.json
    validate(schemas.TYPE_UPDATE, body)
    t = body["volume_type"]
    if not {"name", "description", "is_public"} & set(t):
        raise BadRequest("Invalid input for field/attribute volume_type: give name, "
                         "description or is_public.")
    is_public = body_bool("volume_type/is_public", t["is_public"]) if "is_public" in t else None
    view = req.cloud.db.run(lambda s: type_view(req, service.update_type(
        s, type_id, name=t.get("name"), description=t.get("description"),
        set_description="description" in t, is_public=is_public)))
    for key in ("os-volume-type-access:is_public", "qos_specs_id"):  # Cinder's update view
        view.pop(key, None)
    return {"volume_type": view}


def delete_type(req: ApiRequest, type_id: str) -> Reply:
    admin_only(req, "volume_extension:types_manage:delete")
    req.cloud.db.run(lambda s: service.delete_type(s, type_id))
    return Reply(202)


# ---------------------------------------------------------------- extra specs


def _visible_specs(req: ApiRequest, type_id: str) -> dict[str, str]:
    with req.cloud.db.reader() as s:
        return type_view(req, service.get_type(s, req.ctx, type_id))["extra_specs"]


def list_extra_specs(req: ApiRequest, type_id: str) -> dict:
    allow(req, READ, "volume_extension:types_extra_specs:index")
    return {"extra_specs": _visible_specs(req, type_id)}


def create_extra_specs(req: ApiRequest, type_id: str) -> dict:
    admin_only(req, "volume_extension:types_extra_specs:create")
    body = req.json
    validate(schemas.EXTRA_SPECS, body)
    specs = _specs(body["extra_specs"])
    req.cloud.db.run(lambda s: service.set_extra_specs(s, req.cloud.settings, type_id, specs))
    return {"extra_specs": specs}


def show_extra_spec(req: ApiRequest, type_id: str, key: str) -> dict:
    allow(req, READ, "volume_extension:types_extra_specs:show")
    specs = _visible_specs(req, type_id)
    if key not in specs:
        raise NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")
    return {key: specs[key]}


def update_extra_spec(req: ApiRequest, type_id: str, key: str) -> dict:
    admin_only(req, "volume_extension:types_extra_specs:update")
    body = req.json
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Invalid input received: the body must hold exactly one extra spec.")
    if key not in body:
        raise BadRequest("Invalid input received: Request body and URI mismatch")
    validate(schemas.EXTRA_SPECS, {"extra_specs": body})
    specs = _specs(body)
    req.cloud.db.run(lambda s: service.set_extra_specs(s, req.cloud.settings, type_id, specs))
    return specs


def delete_extra_spec(req: ApiRequest, type_id: str, key: str) -> Reply:
    admin_only(req, "volume_extension:types_extra_specs:delete")
    req.cloud.db.run(lambda s: service.delete_extra_spec(s, type_id, key))
    return Reply(202)


# ---------------------------------------------------------------- access


def list_access(req: ApiRequest, type_id: str) -> dict:
    admin_only(req, "volume_extension:volume_type_access")
    with req.cloud.db.reader() as s:
        projects = service.list_access(s, type_id)
    return {"volume_type_access": [{"volume_type_id": type_id, "project_id": p}
                                   for p in projects]}


def type_action(req: ApiRequest, type_id: str) -> Reply:
    admin_only(req, "volume_extension:volume_type_access:addProjectAccess")
    body = req.json
    if isinstance(body, dict) and "addProjectAccess" in body:
        validate(schemas.ADD_ACCESS, body)
        project = body["addProjectAccess"]["project"]
        req.cloud.db.run(lambda s: service.add_access(s, type_id, project))
    elif isinstance(body, dict) and "removeProjectAccess" in body:
        validate(schemas.REMOVE_ACCESS, body)
        project = body["removeProjectAccess"]["project"]
        req.cloud.db.run(lambda s: service.remove_access(s, type_id, project))
    else:
        raise BadRequest("Invalid input received: the action must be addProjectAccess or "
                         "removeProjectAccess.")
    return Reply(202)


ROUTES = [
    ("GET", "/v3/{project_id}/types", list_types),
    ("POST", "/v3/{project_id}/types", create_type),
    ("GET", "/v3/{project_id}/types/default", show_default_type),
    ("GET", "/v3/{project_id}/types/{type_id}", show_type),
    ("PUT", "/v3/{project_id}/types/{type_id}", update_type),
    ("DELETE", "/v3/{project_id}/types/{type_id}", delete_type),
    ("POST", "/v3/{project_id}/types/{type_id}/action", type_action),
    ("GET", "/v3/{project_id}/types/{type_id}/os-volume-type-access", list_access),
    ("GET", "/v3/{project_id}/types/{type_id}/extra_specs", list_extra_specs),
    ("POST", "/v3/{project_id}/types/{type_id}/extra_specs", create_extra_specs),
    ("GET", "/v3/{project_id}/types/{type_id}/extra_specs/{key}", show_extra_spec),
    ("PUT", "/v3/{project_id}/types/{type_id}/extra_specs/{key}", update_extra_spec),
    ("DELETE", "/v3/{project_id}/types/{type_id}/extra_specs/{key}", delete_extra_spec),
]
