"""Credentials (Keystone's /v3/credentials) and EC2 credentials (/v3/users/{id}/credentials/
OS-EC2, stored as credentials of type "ec2" whose id is the SHA-256 of the access key, as
Keystone does). Blobs are sealed with the identity secrets key (cirrus/identity/secrets.py):
the database holds only the Fernet token."""

from __future__ import annotations

import hashlib
import json
import secrets as _random
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import Credential, Project, User
from cirrus.errors import BadRequest, NotFound
from cirrus.identity import secrets
from cirrus.identity.service.common import _conflict, _flush, new_id


@dataclass(frozen=True)
class OpenCredential:
    """A credential with its blob opened (not in repr: a log line must not show it)."""

    id: str
    user_id: str
    project_id: str | None
    type: str
    blob: str = field(repr=False)
    extra: dict = field(default_factory=dict, repr=False)


def ec2_credential_id(access: str) -> str:
    return hashlib.sha256(access.encode()).hexdigest()


def _ec2_access(blob: str) -> str:
    try:
        parsed = json.loads(blob)
    except ValueError:
        raise BadRequest("Invalid input for field/attribute blob: an ec2 credential's blob "
                         "must be a JSON object.") from None
    access = parsed.get("access") if isinstance(parsed, dict) else None
    if not isinstance(access, str) or not access:
        raise BadRequest("Invalid input for field/attribute blob: credential type ec2 must "
                         "have an access key.")
    return access


def _open(settings: secrets.KeySettings, row: Credential) -> OpenCredential:
    return OpenCredential(id=row.id, user_id=row.user_id, project_id=row.project_id,
                          type=row.type, blob=secrets.open_sealed(settings, row.sealed_blob),
                          extra=dict(row.extra or {}))


def _check_refs(s: Session, user_id: str, project_id: str | None) -> None:
    if s.get(User, user_id) is None:
        raise BadRequest(f"Invalid input for field/attribute user_id: could not find user: "
                         f"{user_id}.")
    if project_id is not None and s.get(Project, project_id) is None:
        raise BadRequest(f"Invalid input for field/attribute project_id: could not find "
                         f"project: {project_id}.")


def create_credential(s: Session, settings: secrets.KeySettings, fields: dict) -> OpenCredential:
    known = ("blob", "type", "user_id", "project_id", "id")
    extra = {k: v for k, v in fields.items() if k not in known}
    blob, kind, project_id = fields["blob"], fields["type"], fields.get("project_id")
    if kind == "ec2":
        if not project_id:
            raise BadRequest("Invalid input for field/attribute project_id: an ec2 credential "
                             "needs a project_id.")
        credential_id = ec2_credential_id(_ec2_access(blob))
    else:
        credential_id = new_id()
    _check_refs(s, fields["user_id"], project_id)
    if s.get(Credential, credential_id) is not None:
        raise _conflict("credential", f"Duplicate ID, {credential_id}")
    row = Credential(id=credential_id, user_id=fields["user_id"], project_id=project_id,
                     type=kind, sealed_blob=secrets.seal(settings, blob),
                     key_hash=secrets.key_hash(settings), extra=extra)
    s.add(row)
    _flush(s, "credential", f"Duplicate ID, {credential_id}")
    return _open(settings, row)


def get_credential(s: Session, settings: secrets.KeySettings, credential_id: str,
                   *, owner: str | None = None) -> OpenCredential:
    """`owner`: a non-admin caller's user id; someone else's credential does not exist."""
    row = s.get(Credential, credential_id)
    if row is None or (owner is not None and row.user_id != owner):
        raise NotFound(f"Could not find credential: {credential_id}.")
    return _open(settings, row)


def list_credentials(s: Session, settings: secrets.KeySettings, *, user_id: str | None = None,
                     kind: str | None = None) -> list[OpenCredential]:
    query = select(Credential).order_by(Credential.created_at, Credential.id)
    if user_id is not None:
        query = query.where(Credential.user_id == user_id)
    if kind is not None:
        query = query.where(Credential.type == kind)
    return [_open(settings, row) for row in s.scalars(query)]


def update_credential(s: Session, settings: secrets.KeySettings, credential_id: str,
                      fields: dict, *, owner: str | None = None) -> OpenCredential:
    row = s.get(Credential, credential_id)
    if row is None or (owner is not None and row.user_id != owner):
        raise NotFound(f"Could not find credential: {credential_id}.")
    kind = fields.get("type", row.type)
    project_id = fields.get("project_id", row.project_id)
    user_id = fields.get("user_id", row.user_id)
    if kind == "ec2" and not project_id:
        raise BadRequest("Invalid input for field/attribute project_id: an ec2 credential "
                         "needs a project_id.")
    _check_refs(s, user_id, project_id)
    if "blob" in fields:
        if kind == "ec2":
            _ec2_access(fields["blob"])
        row.sealed_blob = secrets.seal(settings, fields["blob"])
        row.key_hash = secrets.key_hash(settings)
    elif kind == "ec2" and row.type != "ec2":
        _ec2_access(secrets.open_sealed(settings, row.sealed_blob))
    row.type, row.project_id, row.user_id = kind, project_id, user_id
    extra = {k: v for k, v in fields.items()
             if k not in ("blob", "type", "user_id", "project_id", "id")}
    if extra:
        row.extra = {**(row.extra or {}), **extra}
    s.flush()
    return _open(settings, row)


def delete_credential(s: Session, credential_id: str, *, owner: str | None = None) -> None:
    row = s.get(Credential, credential_id)
    if row is None or (owner is not None and row.user_id != owner):
        raise NotFound(f"Could not find credential: {credential_id}.")
    s.delete(row)


# ---------------------------------------------------------------- EC2


@dataclass(frozen=True)
class Ec2Credential:
    user_id: str
    tenant_id: str | None
    access: str
    secret: str = field(repr=False)
    trust_id: str | None = None


def _ec2_view(cred: OpenCredential) -> Ec2Credential:
    blob = json.loads(cred.blob)
    return Ec2Credential(user_id=cred.user_id, tenant_id=cred.project_id,
                         access=blob.get("access", ""), secret=blob.get("secret", ""),
                         trust_id=blob.get("trust_id"))


def create_ec2(s: Session, settings: secrets.KeySettings, user_id: str,
               project_id: str) -> Ec2Credential:
    if s.get(User, user_id) is None:
        raise NotFound(f"Could not find user: {user_id}.")
    if s.get(Project, project_id) is None:
        raise NotFound(f"Could not find project: {project_id}.")
    access, secret = _random.token_hex(16), _random.token_hex(16)
    blob = json.dumps({"access": access, "secret": secret, "trust_id": None})
    return _ec2_view(create_credential(
        s, settings, {"user_id": user_id, "project_id": project_id, "type": "ec2",
                      "blob": blob}))


def list_ec2(s: Session, settings: secrets.KeySettings, user_id: str) -> list[Ec2Credential]:
    if s.get(User, user_id) is None:
        raise NotFound(f"Could not find user: {user_id}.")
    return [_ec2_view(c) for c in list_credentials(s, settings, user_id=user_id, kind="ec2")]


def _ec2_row(s: Session, user_id: str, access: str) -> Credential:
    row = s.get(Credential, ec2_credential_id(access))
    if row is None or row.type != "ec2" or row.user_id != user_id:
        raise NotFound(f"Could not find credential: {access}.")
    return row


def get_ec2(s: Session, settings: secrets.KeySettings, user_id: str,
            access: str) -> Ec2Credential:
    return _ec2_view(_open(settings, _ec2_row(s, user_id, access)))


def delete_ec2(s: Session, user_id: str, access: str) -> None:
    s.delete(_ec2_row(s, user_id, access))
