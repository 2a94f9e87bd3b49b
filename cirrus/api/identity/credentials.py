"""Credentials (/v3/credentials) and EC2 credentials (/v3/users/{id}/credentials/OS-EC2).

Keystone's default policy: an admin manages every credential; anyone else manages only their
own (a credential of another user does not exist for them; making one for another user is
403). Blobs are secrets: sealed in the database (cirrus/identity/secrets.py), redacted from
any 400. Authenticating with EC2 credentials (/v3/ec2tokens) is not served.
"""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import schemas_extra as schemas
from cirrus.api.identity.common import _collection, _v3
from cirrus.api.validation import validate
from cirrus.errors import Forbidden
from cirrus.identity.service import credentials as creds


def _body(req: ApiRequest, schema: dict) -> dict:
    body = req.json
    validate(schema, schemas.redacted(body))
    return body


def _owner(req: ApiRequest) -> str | None:
    """None for an admin (every credential), else the caller's user id."""
    return None if req.ctx.is_admin else req.require_user()


def _deny(action: str) -> Forbidden:
    return Forbidden(f"You are not authorized to perform the requested action: "
                     f"identity:{action}.")


def _view(req: ApiRequest, cred: creds.OpenCredential) -> dict:
    return {**cred.extra, "id": cred.id, "user_id": cred.user_id, "project_id": cred.project_id,
            "type": cred.type, "blob": cred.blob,
            "links": {"self": f"{_v3(req)}/credentials/{cred.id}"}}


def list_credentials(req: ApiRequest) -> dict:
    owner = _owner(req)
    user_id = req.query.get("user_id")
    if owner is not None:
        if user_id is not None and user_id != owner:
            return _collection(req, "credentials", [])
        user_id = owner
    settings = req.cloud.settings
    with req.cloud.db.reader() as s:
        found = creds.list_credentials(s, settings, user_id=user_id, kind=req.query.get("type"))
    return _collection(req, "credentials", [_view(req, c) for c in found])


def create_credential(req: ApiRequest) -> Reply:
    fields = _body(req, schemas.credential_create)["credential"]
    schemas.fits(fields, "blob", schemas.BLOB_BYTES)
    owner = _owner(req)
    if owner is not None and fields["user_id"] != owner:
        raise _deny("create_credential")
    settings = req.cloud.settings
    cred = req.cloud.db.run(lambda s: creds.create_credential(s, settings, fields))
    return Reply(201, {"credential": _view(req, cred)})


def show_credential(req: ApiRequest, credential_id: str) -> dict:
    owner, settings = _owner(req), req.cloud.settings
    with req.cloud.db.reader() as s:
        cred = creds.get_credential(s, settings, credential_id, owner=owner)
    return {"credential": _view(req, cred)}


def update_credential(req: ApiRequest, credential_id: str) -> dict:
    fields = _body(req, schemas.credential_update)["credential"]
    schemas.fits(fields, "blob", schemas.BLOB_BYTES)
    owner, settings = _owner(req), req.cloud.settings
    if owner is not None and fields.get("user_id", owner) != owner:
        raise _deny("update_credential")
    cred = req.cloud.db.run(
        lambda s: creds.update_credential(s, settings, credential_id, fields, owner=owner))
    return {"credential": _view(req, cred)}


def delete_credential(req: ApiRequest, credential_id: str) -> None:
    owner = _owner(req)
    req.cloud.db.run(lambda s: creds.delete_credential(s, credential_id, owner=owner))


# ---------------------------------------------------------------- EC2


def _ec2_allowed(req: ApiRequest, user_id: str, action: str) -> None:
    if not req.ctx.is_admin and req.require_user() != user_id:
        raise _deny(action)


def _ec2_view(req: ApiRequest, cred: creds.Ec2Credential) -> dict:
    return {"user_id": cred.user_id, "tenant_id": cred.tenant_id, "access": cred.access,
            "secret": cred.secret, "trust_id": cred.trust_id,
            "links": {"self": f"{_v3(req)}/users/{cred.user_id}/credentials/OS-EC2/"
                              f"{cred.access}"}}


def create_ec2(req: ApiRequest, user_id: str) -> Reply:
    _ec2_allowed(req, user_id, "ec2_create_credential")
    project_id = _body(req, schemas.ec2_create)["tenant_id"]
    settings = req.cloud.settings
    cred = req.cloud.db.run(lambda s: creds.create_ec2(s, settings, user_id, project_id))
    return Reply(201, {"credential": _ec2_view(req, cred)})


def list_ec2(req: ApiRequest, user_id: str) -> dict:
    _ec2_allowed(req, user_id, "ec2_list_credentials")
    with req.cloud.db.reader() as s:
        found = creds.list_ec2(s, req.cloud.settings, user_id)
    return _collection(req, "credentials", [_ec2_view(req, c) for c in found])


def show_ec2(req: ApiRequest, user_id: str, credential_id: str) -> dict:
    _ec2_allowed(req, user_id, "ec2_get_credential")
    with req.cloud.db.reader() as s:
        cred = creds.get_ec2(s, req.cloud.settings, user_id, credential_id)
    return {"credential": _ec2_view(req, cred)}


def delete_ec2(req: ApiRequest, user_id: str, credential_id: str) -> None:
    _ec2_allowed(req, user_id, "ec2_delete_credential")
    req.cloud.db.run(lambda s: creds.delete_ec2(s, user_id, credential_id))


ROUTES: list = [
    ("GET", "/v3/credentials", list_credentials),
    ("POST", "/v3/credentials", create_credential),
    ("GET", "/v3/credentials/{credential_id}", show_credential),
    ("PATCH", "/v3/credentials/{credential_id}", update_credential),
    ("DELETE", "/v3/credentials/{credential_id}", delete_credential),
    ("GET", "/v3/users/{user_id}/credentials/OS-EC2", list_ec2),
    ("POST", "/v3/users/{user_id}/credentials/OS-EC2", create_ec2),
    ("GET", "/v3/users/{user_id}/credentials/OS-EC2/{credential_id}", show_ec2),
    ("DELETE", "/v3/users/{user_id}/credentials/OS-EC2/{credential_id}", delete_ec2),
]
