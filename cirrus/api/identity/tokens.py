"""Tokens: issue, validate, check, revoke; the token's catalog, projects and domains."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.identity import schemas
from cirrus.api.identity.common import (
    FAST,
    NOAUTH,
    _authorize,
    _collection,
    _counting_failed_logins,
    _policy,
)
from cirrus.api.identity.views import _catalog_view, _domain_view, _project_view, _token_view
from cirrus.api.validation import validate
from cirrus.errors import BadRequest, Forbidden
from cirrus.identity import service as identity
from cirrus.identity.policy import ADMIN
from cirrus.identity.tokens import TokenClaims


def issue_token(req: ApiRequest) -> Reply:
    body = req.json
    validate(schemas.auth_request, schemas.redacted(body))
    auth = body["auth"]
    policy = _policy(req)
    with _counting_failed_logins(req, policy), req.cloud.db.reader() as s:
        claims, user = identity.authenticate(s, req.cloud.tokens, auth["identity"],
                                             auth.get("scope"), policy)
    if user.failed_auth_count and policy.lockout_failure_attempts:
        req.cloud.db.run(lambda s: identity.record_login(s, user.id, policy, failed=False))
    token_id = req.cloud.tokens.issue(claims)
    return Reply(201, _token_view(req, claims, user.password_expires_at),
                 {"X-Subject-Token": token_id})


def _subject(req: ApiRequest) -> TokenClaims:
    """The X-Subject-Token's claims, if the caller may inspect it (their own, or any if admin)."""
    token = req.headers.get("x-subject-token")
    if not token:
        raise BadRequest("The X-Subject-Token header is required.")
    claims = req.cloud.tokens.validate(token)  # NotFound for bad, expired or revoked
    if claims.user_id != req.ctx.user_id:
        _authorize(req, ADMIN, "validate_token")
    return claims


def validate_token(req: ApiRequest) -> dict:
    # A signature check and a revocation lookup, nothing more: deleting or disabling a user
    # revokes their tokens, and the token carries the password expiry it was issued with.
    claims = _subject(req)
    return _token_view(req, claims, claims.password_expires_datetime)


def check_token(req: ApiRequest) -> Reply:
    _subject(req)
    return Reply(200)


def revoke_token(req: ApiRequest) -> None:
    claims = _subject(req)
    req.cloud.tokens.revoke(claims)


def auth_catalog(req: ApiRequest) -> dict:
    if not (req.claims and (req.claims.project_id or req.claims.project_domain_id
                            or req.claims.system)):
        raise Forbidden("A project-scoped token is required to produce a service catalog.")
    return _collection(req, "catalog", _catalog_view(req, req.claims.project_id))


def auth_projects(req: ApiRequest) -> dict:
    with req.cloud.db.reader() as s:
        projects = identity.projects_of_user(s, req.require_user(), usable_only=True)
    return _collection(req, "projects", [_project_view(req, p) for p in projects])


def auth_domains(req: ApiRequest) -> dict:
    with req.cloud.db.reader() as s:
        domains = identity.domains_of_user(s, req.require_user())
    return _collection(req, "domains", [_domain_view(req, d) for d in domains])


ROUTES: list = [
    ("POST", "/v3/auth/tokens", issue_token, NOAUTH),
    ("GET", "/v3/auth/tokens", validate_token, FAST),
    ("HEAD", "/v3/auth/tokens", check_token, FAST),
    ("DELETE", "/v3/auth/tokens", revoke_token),
    ("GET", "/v3/auth/catalog", auth_catalog),
    ("GET", "/v3/auth/projects", auth_projects),
    ("GET", "/v3/auth/domains", auth_domains),
]
