"""Key pairs (os-keypairs), Nova v2.1 up to 2.60.

Microversions: 2.2 adds `type` (ssh or x509), answers create with 201 and delete with 204
(200 and 202 before); 2.10 lets an admin name another user with `user_id`; 2.35 pages the
list with `limit`/`marker` and `keypairs_links`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cirrus.api.compute import schemas_misc as schemas
from cirrus.api.compute.common import next_links, page_limit_and_marker
from cirrus.api.compute.microversion import Since, by_version
from cirrus.api.compute.views import iso_micro
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import validate
from cirrus.compute import keypairs as service
from cirrus.errors import Forbidden
from cirrus.identity.policy import READ, WRITE, authorize

if TYPE_CHECKING:
    from cirrus.db.models import KeyPair

KEY_TYPE = Since("2.2")  # the `type` field (ssh or x509)
OTHER_USER = Since("2.10")  # an admin may name another user with `user_id`
PAGED = Since("2.35")  # `limit`, `marker` and `keypairs_links`
CREATE_SCHEMA = by_version({("2.1", "2.1"): schemas.keypair_create,
                            ("2.2", "2.9"): schemas.keypair_create_v22,
                            ("2.10", None): schemas.keypair_create_v210})
CREATE_STATUS = by_version({("2.1", "2.1"): 200, ("2.2", None): 201})
DELETE_STATUS = by_version({("2.1", "2.1"): 202, ("2.2", None): 204})


def _owner(req: ApiRequest, requested: str | None, action: str) -> str:
    """Whose key pairs: the caller's, or (2.10+, admins only) the `user_id` given."""
    user_id = requested if requested and OTHER_USER(req) else req.ctx.user_id
    if user_id != req.ctx.user_id and not req.ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow os_compute_api:os-keypairs:{action} "
                        "to be performed.")
    return user_id or ""


def _brief(req: ApiRequest, kp: KeyPair) -> dict[str, Any]:
    view = {"name": kp.name, "public_key": kp.public_key, "fingerprint": kp.fingerprint}
    if KEY_TYPE(req):
        view["type"] = kp.type
    return view


def _full(req: ApiRequest, kp: KeyPair) -> dict[str, Any]:
    view = {
        "name": kp.name,
        "public_key": kp.public_key,
        "fingerprint": kp.fingerprint,
        "user_id": kp.user_id,
        "created_at": iso_micro(kp.created_at),
        "deleted": False,  # Nova's soft-delete fields; key pairs here are never soft-deleted
        "deleted_at": None,
        "id": kp.id,
        "updated_at": None,
    }
    if KEY_TYPE(req):
        view["type"] = kp.type
    return view


def list_keypairs(req: ApiRequest) -> dict:
    authorize(req.ctx, READ)
    user_id = _owner(req, req.query.get("user_id"), "index")
    limit, marker = (page_limit_and_marker(req) if PAGED(req) else (None, None))
    with req.cloud.db.reader() as s:
        keypairs = service.list_keypairs(s, user_id, limit=limit, marker=marker)
        body: dict[str, Any] = {"keypairs": [{"keypair": _brief(req, kp)} for kp in keypairs]}
    if limit is not None:
        links = next_links(req, "os-keypairs", len(keypairs),
                           keypairs[-1].name if keypairs else None, limit)
        if links:
            body["keypairs_links"] = links
    return body


def create_keypair(req: ApiRequest) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-keypairs:create")
    body = req.json
    validate(CREATE_SCHEMA(req), body)
    spec = body["keypair"]
    user_id = _owner(req, spec.get("user_id"), "create")
    material = service.prepare_key(spec.get("type", service.SSH), user_id,
                                   spec.get("public_key"))
    keypair = req.cloud.db.run(lambda s: service.create_keypair(
        s, req.cloud.settings, project_id=req.ctx.project_id, user_id=user_id,
        name=spec["name"].strip(), material=material))
    view: dict[str, Any] = {}
    if material.private_key is not None:
        view["private_key"] = material.private_key
    view.update({"name": keypair.name, "public_key": keypair.public_key,
                 "fingerprint": keypair.fingerprint, "user_id": keypair.user_id})
    if KEY_TYPE(req):
        view["type"] = keypair.type
    return Reply(CREATE_STATUS(req), {"keypair": view})


def show_keypair(req: ApiRequest, name: str) -> dict:
    authorize(req.ctx, READ)
    user_id = _owner(req, req.query.get("user_id"), "show")
    with req.cloud.db.reader() as s:
        return {"keypair": _full(req, service.get_keypair(s, user_id, name))}


def delete_keypair(req: ApiRequest, name: str) -> Reply:
    authorize(req.ctx, WRITE, "os_compute_api:os-keypairs:delete")
    user_id = _owner(req, req.query.get("user_id"), "delete")
    req.cloud.db.run(lambda s: service.delete_keypair(s, user_id, name))
    return Reply(DELETE_STATUS(req))


ROUTES = [
    ("GET", "/v2.1/os-keypairs", list_keypairs),
    ("POST", "/v2.1/os-keypairs", create_keypair),
    ("GET", "/v2.1/os-keypairs/{name}", show_keypair),
    ("DELETE", "/v2.1/os-keypairs/{name}", delete_keypair),
]
