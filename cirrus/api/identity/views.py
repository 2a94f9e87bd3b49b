"""Keystone's representations of domains, projects, users, roles and tokens."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from cirrus.api.framework import ApiRequest
from cirrus.api.identity.common import _iso, _naive_iso, _self_link
from cirrus.identity import service as identity
from cirrus.identity.service import catalog_admin
from cirrus.identity.tokens import TokenClaims

if TYPE_CHECKING:
    from cirrus.db.models import Domain, Project, Role, User


def _domain_view(req: ApiRequest, d: Domain) -> dict:
    return {"id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled,
            "tags": [], "options": {}, "links": _self_link(req, "domains", d.id)}


def _domain_project_view(req: ApiRequest, d: Domain) -> dict:
    """A domain seen through /v3/projects: a project acting as a domain (Keystone's model)."""
    return {"id": d.id, "name": d.name, "domain_id": None, "description": d.description,
            "enabled": d.enabled, "parent_id": None, "is_domain": True, "tags": [],
            "options": {}, "links": _self_link(req, "projects", d.id)}


def _project_view(req: ApiRequest, p: Project) -> dict:
    extra = p.extra or {}
    return {**identity.extra_attributes(extra),
            "id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description,
            "enabled": p.enabled, "parent_id": p.parent_id or p.domain_id, "is_domain": False,
            "tags": extra.get("tags", []), "options": extra.get("options", {}),
            "links": _self_link(req, "projects", p.id)}


def _user_view(req: ApiRequest, u: User) -> dict:
    view = {**identity.extra_attributes(u.extra),
            "id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
            "password_expires_at": _naive_iso(u.password_expires_at),
            "options": (u.extra or {}).get("options", {}), "links": _self_link(req, "users", u.id)}
    if u.default_project_id:
        view["default_project_id"] = u.default_project_id
    if u.description:
        view["description"] = u.description
    if u.email:
        view["email"] = u.email
    return view


def _role_view(req: ApiRequest, r: Role) -> dict:
    return {"id": r.id, "name": r.name, "domain_id": r.domain_id,
            "description": r.description or None, "options": {},
            "links": _self_link(req, "roles", r.id)}


def _catalog_view(req: ApiRequest, project_id: str | None) -> list[dict]:
    """The catalog of a token scoped to this project (OS-EP-FILTER may narrow it) or not."""
    return catalog_admin.token_catalog(req.cloud.db, project_id)


def _token_view(req: ApiRequest, claims: TokenClaims, password_expires_at: dt.datetime | None,
                ) -> dict:
    token: dict[str, Any] = {
        "methods": claims.methods,
        "user": {"id": claims.user_id, "name": claims.user_name,
                 "domain": {"id": claims.user_domain_id, "name": claims.user_domain_name},
                 "password_expires_at": _naive_iso(password_expires_at)},
        "audit_ids": [claims.audit_id],
        "issued_at": _iso(claims.issued_at),
        "expires_at": _iso(claims.expires_at),
    }
    scoped = True
    if claims.project_id:
        token["project"] = {"id": claims.project_id, "name": claims.project_name,
                            "domain": {"id": claims.project_domain_id,
                                       "name": claims.project_domain_name}}
        token["is_domain"] = False
        token["roles"] = claims.roles
    elif claims.project_domain_id:  # domain-scoped (see identity.build_claims)
        token["domain"] = {"id": claims.project_domain_id, "name": claims.project_domain_name}
        token["roles"] = claims.roles
    elif claims.system:
        token["system"] = {"all": True}
        token["roles"] = claims.roles
    else:
        scoped = False
    if claims.application_credential is not None:
        token["application_credential"] = dict(claims.application_credential)
    if scoped and "nocatalog" not in req.query:
        token["catalog"] = _catalog_view(req, claims.project_id)
    return {"token": token}
