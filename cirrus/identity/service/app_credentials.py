"""Application credentials: a user's secret for one project with a subset of their roles
(Keystone's /v3/users/{id}/application_credentials), and authentication with one.

The secret is shown once, when created; only its argon2 hash is stored (as passwords are).
A restricted credential (the default) cannot be used to create or delete application
credentials (nor trusts, which Cirrus does not have). Deleting one revokes the tokens it gave
(a revocation row keyed by the credential's id; cirrus.identity.tokens checks it).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import ApplicationCredential, Project, Role, User, utcnow
from cirrus.errors import BadRequest, NotFound, Unauthorized
from cirrus.identity.passwords import hash_password, verify_password
from cirrus.identity.service.auth import (
    _check_user_enabled,
    _domain_by_ref,
    _dummy_hash,
    _expanded_role_refs,
    build_claims,
)
from cirrus.identity.service.common import _conflict, _flush, new_id
from cirrus.identity.service.projects import _usable_project
from cirrus.identity.service.roles import _roles_on

if TYPE_CHECKING:
    from cirrus.identity.tokens import TokenClaims, TokenProvider

log = logging.getLogger(__name__)
METHOD = "application_credential"
MAX_SECRET = 255


def parse_expiry(value: str | None) -> dt.datetime | None:
    """An ISO 8601 time (with or without zone; naive means UTC) as naive UTC, in the future."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise BadRequest(f"Invalid input for field/attribute application_credential/expires_at."
                         f" Value: {value}. It is not an ISO 8601 date and time.") from None
    if parsed <= utcnow():
        raise BadRequest(f"Invalid input for field/attribute application_credential/expires_at."
                         f" Value: {value}. It is in the past.")
    return parsed


def _chosen_roles(s: Session, fields: dict, token_roles: list[dict], user_id: str,
                  project_id: str) -> list[dict]:
    """The roles asked for (by default the caller's token's), each one the user holds on the
    project now (Keystone checks the assignments, not the token: a role given since counts)."""
    held = _expanded_role_refs(s, _roles_on(s, user_id, project_id, "project"))
    chosen: list[dict] = []
    for ref in fields.get("roles") or token_roles:
        match = next((r for r in held
                      if ("id" not in ref or r["id"] == ref["id"])
                      and ("name" not in ref or r["name"] == ref["name"])), None)
        if match is None:
            role = ref.get("id") or ref.get("name")
            raise NotFound(f"Could not find role assignment with role: {role}, user or group: "
                           f"{user_id}, project, domain, or system: {project_id}.")
        if match not in chosen:
            chosen.append(dict(match))
    return chosen


def create(s: Session, user_id: str, project_id: str, caller_roles: list[dict],
           fields: dict) -> tuple[ApplicationCredential, str]:
    """A new credential of `user_id` for the project the caller's token is scoped to, and its
    secret (given, or 64 random bytes in base64url)."""
    name = fields["name"]
    duplicate = f"Duplicate entry found with name {name}"
    if s.scalar(select(ApplicationCredential.id).where(
            ApplicationCredential.user_id == user_id,
            ApplicationCredential.name == name)) is not None:
        raise _conflict("application_credential", duplicate)
    roles = _chosen_roles(s, fields, caller_roles, user_id, project_id)
    secret = fields.get("secret") or secrets.token_urlsafe(64)
    if len(secret) > MAX_SECRET:  # validation saw a redacted body: the length is checked here
        raise BadRequest(f"Invalid input for field/attribute application_credential/secret. "
                         f"It is longer than {MAX_SECRET} characters.")
    cred = ApplicationCredential(
        id=new_id(), name=name, user_id=user_id, project_id=project_id,
        description=fields.get("description") or "", secret_hash=hash_password(secret),
        roles=roles, unrestricted=bool(fields.get("unrestricted")),
        expires_at=parse_expiry(fields.get("expires_at")), created_at=utcnow())
    s.add(cred)
    _flush(s, "application_credential", duplicate)
    return cred, secret


def get(s: Session, user_id: str, credential_id: str) -> ApplicationCredential:
    cred = s.get(ApplicationCredential, credential_id)
    if cred is None or cred.user_id != user_id:
        raise NotFound(f"Could not find Application Credential: {credential_id}.")
    return cred


def list_for_user(s: Session, user_id: str, name: str | None = None
                  ) -> list[ApplicationCredential]:
    query = select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
    if name is not None:
        query = query.where(ApplicationCredential.name == name)
    return list(s.scalars(query.order_by(ApplicationCredential.name, ApplicationCredential.id)))


def delete(s: Session, user_id: str, credential_id: str) -> str:
    """Delete a credential; returns its id, whose tokens the caller revokes."""
    cred = get(s, user_id, credential_id)
    s.delete(cred)
    return cred.id


def delete_for_user(s: Session, user_id: str) -> list[str]:
    """A deleted user's credentials go with them."""
    creds = list_for_user(s, user_id)
    for cred in creds:
        s.delete(cred)
    return [c.id for c in creds]


# ---------------------------------------------------------------- authentication


def _named_credential(s: Session, ref: dict) -> ApplicationCredential | None:
    if ref.get("id"):
        return s.get(ApplicationCredential, ref["id"])
    user_ref = ref.get("user") or {}
    user: User | None = None
    if user_ref.get("id"):
        user = s.get(User, user_ref["id"])
    elif user_ref.get("name"):
        domain = _domain_by_ref(s, user_ref.get("domain") or {})
        if domain is not None:
            user = s.scalar(select(User).where(User.name == user_ref["name"],
                                               User.domain_id == domain.id))
    if user is None:
        return None
    return s.scalar(select(ApplicationCredential).where(
        ApplicationCredential.user_id == user.id, ApplicationCredential.name == ref["name"]))


def authenticate(s: Session, tokens: TokenProvider, identity: dict,
                 scope: object) -> tuple[TokenClaims, User]:
    """Claims for a token from `{"application_credential": {"id"|"name"+"user", "secret"}}`:
    scoped to the credential's project, with the credential's roles the user still holds."""
    ref = identity.get(METHOD)
    if not isinstance(ref, dict) or not isinstance(ref.get("secret"), str) or not (
            isinstance(ref.get("id"), str) or (isinstance(ref.get("name"), str)
                                               and isinstance(ref.get("user"), dict))):
        raise BadRequest("Invalid input for field/attribute identity/application_credential. "
                         "Expecting to find id, or name and user, and secret.")
    cred = _named_credential(s, ref)
    secret = ref["secret"]
    ok = verify_password(cred.secret_hash if cred else _dummy_hash(),
                         secret if len(secret) <= MAX_SECRET else "")
    if cred is None or not ok or len(secret) > MAX_SECRET:
        log.info("authentication failed: unknown application credential or wrong secret")
        raise Unauthorized()
    if cred.expires_at is not None and cred.expires_at <= utcnow():
        log.info("authentication failed: application credential %s has expired", cred.id)
        raise Unauthorized()
    if scope not in (None, {}) and not (isinstance(scope, dict) and scope.get("project", {})
                                        .get("id") == cred.project_id):
        log.info("authentication failed: application credential %s asked for a scope", cred.id)
        raise Unauthorized()
    user = s.get(User, cred.user_id)
    if user is None:
        raise Unauthorized()
    _check_user_enabled(s, user)
    project = _usable_project(s, s.get(Project, cred.project_id))
    if project is None:
        log.info("authentication failed: project of application credential %s unusable",
                 cred.id)
        raise Unauthorized()
    held = {r["name"] for r in _expanded_role_refs(
        s, _roles_on(s, user.id, project.id, "project"))}
    names = [r["name"] for r in cred.roles if r["name"] in held]
    if not names:
        log.info("authentication failed: user %s no longer holds the roles of application "
                 "credential %s", user.id, cred.id)
        raise Unauthorized()
    roles = list(s.scalars(select(Role).where(Role.name.in_(names))))
    claims = build_claims(s, tokens, user, project, methods=[METHOD], roles=roles)
    claims.application_credential = {"id": cred.id, "name": cred.name,
                                     "restricted": not cred.unrestricted}
    if cred.expires_at is not None:
        claims.expires_at = min(claims.expires_at,
                                cred.expires_at.replace(tzinfo=dt.UTC).timestamp())
    return claims, user
