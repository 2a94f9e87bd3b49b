"""QoS specs: /v3/{project_id}/qos-specs (+ associations, associate, disassociate,
disassociate_all, delete_keys) over cirrus.storage.volumes.qos. Admins only, as Cinder's
default policy says."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.api.volume import schemas
from cirrus.api.volume.common import admin_only, parse_bool
from cirrus.api.volume.views import qos_links, qos_view
from cirrus.errors import BadRequest
from cirrus.storage.volumes import qos as service

if TYPE_CHECKING:
    from cirrus.db.models import QosSpec


def _strings(raw: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in raw.items()}


def _shown(req: ApiRequest, spec: QosSpec) -> dict:
    return {"qos_specs": qos_view(req, spec), "links": qos_links(req, spec)}


def list_specs(req: ApiRequest) -> dict:
    admin_only(req, "volume_extension:qos_specs_manage:get_all")
    with req.cloud.db.reader() as s:
        return {"qos_specs": [qos_view(req, q) for q in service.list_specs(s)]}


def create_spec(req: ApiRequest) -> dict:
    admin_only(req, "volume_extension:qos_specs_manage:create")
    body = req.json
    validate(schemas.QOS_CREATE, body)
    values = _strings(body["qos_specs"])
    name = values.pop("name").strip()
    if not name:
        raise BadRequest("Invalid input for field/attribute qos_specs/name. Value: ''. "
                         "It must not be blank.")
    consumer = values.pop("consumer", "back-end")
    return req.cloud.db.run(lambda s: _shown(req, service.create_spec(s, name, consumer,
                                                                      values)))


def show_spec(req: ApiRequest, spec_id: str) -> dict:
    admin_only(req, "volume_extension:qos_specs_manage:get")
    with req.cloud.db.reader() as s:
        return _shown(req, service.get_spec(s, spec_id))


def update_spec(req: ApiRequest, spec_id: str) -> dict:
    admin_only(req, "volume_extension:qos_specs_manage:update")
    body = req.json
    validate(schemas.QOS_UPDATE, body)
    values = _strings(body["qos_specs"])
    req.cloud.db.run(lambda s: service.update_spec(s, spec_id, dict(values)))
    return {"qos_specs": values}


def delete_spec(req: ApiRequest, spec_id: str) -> Reply:
    admin_only(req, "volume_extension:qos_specs_manage:delete")
    force = parse_bool("force", req.query.get("force", "false"))
    req.cloud.db.run(lambda s: service.delete_spec(s, spec_id, force))
    return Reply(202)


def delete_keys(req: ApiRequest, spec_id: str) -> Reply:
    admin_only(req, "volume_extension:qos_specs_manage:delete_keys")
    body = req.json
    validate(schemas.QOS_UNSET, body)
    req.cloud.db.run(lambda s: service.unset_keys(s, spec_id, list(body["keys"])))
    return Reply(202)


def list_associations(req: ApiRequest, spec_id: str) -> dict:
    admin_only(req, "volume_extension:qos_specs_manage:get")
    with req.cloud.db.reader() as s:
        types = service.associations(s, spec_id)
        return {"qos_associations": [{"association_type": "volume_type", "name": t.name,
                                      "id": t.id} for t in types]}


def _type_id(req: ApiRequest) -> str:
    type_id = req.query.get("vol_type_id")
    if not type_id:
        raise BadRequest("Invalid input received: vol_type_id is required.")
    return type_id


def associate(req: ApiRequest, spec_id: str) -> Reply:
    admin_only(req, "volume_extension:qos_specs_manage:update")
    type_id = _type_id(req)
    req.cloud.db.run(lambda s: service.associate(s, spec_id, type_id))
    return Reply(202)


def disassociate(req: ApiRequest, spec_id: str) -> Reply:
    admin_only(req, "volume_extension:qos_specs_manage:update")
    type_id = _type_id(req)
    req.cloud.db.run(lambda s: service.disassociate(s, spec_id, type_id))
    return Reply(202)


def disassociate_all(req: ApiRequest, spec_id: str) -> Reply:
    admin_only(req, "volume_extension:qos_specs_manage:update")
    req.cloud.db.run(lambda s: service.disassociate_all(s, spec_id))
    return Reply(202)


ROUTES = [
    ("GET", "/v3/{project_id}/qos-specs", list_specs),
    ("POST", "/v3/{project_id}/qos-specs", create_spec),
    ("GET", "/v3/{project_id}/qos-specs/{spec_id}", show_spec),
    ("PUT", "/v3/{project_id}/qos-specs/{spec_id}", update_spec),
    ("DELETE", "/v3/{project_id}/qos-specs/{spec_id}", delete_spec),
    ("PUT", "/v3/{project_id}/qos-specs/{spec_id}/delete_keys", delete_keys),
    ("GET", "/v3/{project_id}/qos-specs/{spec_id}/associations", list_associations),
    ("GET", "/v3/{project_id}/qos-specs/{spec_id}/associate", associate),
    ("GET", "/v3/{project_id}/qos-specs/{spec_id}/disassociate", disassociate),
    ("GET", "/v3/{project_id}/qos-specs/{spec_id}/disassociate_all", disassociate_all),
]
