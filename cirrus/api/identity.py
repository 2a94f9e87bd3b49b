"""Keystone v3 subset, served under /identity.

Every handler reads in the same order: authorise, validate, act (one call into
cirrus.identity.service), serialise. Rights taken away (unassign, disable, delete, password
change) revoke the affected tokens once the change has committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from cirrus.api.framework import ApiRequest, Reply, make_routes
from cirrus.api.validation import validate
from cirrus.db.models import Domain, Project, Role, User
from cirrus.errors import BadRequest, Forbidden, NotFound
from cirrus.identity import catalog, schemas
from cirrus.identity import service as identity
from cirrus.identity.compliance import PasswordPolicy
from cirrus.identity.policy import ADMIN, READ, authorize
from cirrus.identity.tokens import TokenClaims

NOAUTH = {"auth": False}
# Pure functions of the request and the token: served on the event loop, no thread hop.
FAST = {"inline": True}
FAST_NOAUTH = {"auth": False, "inline": True}
V3_ID, V3_UPDATED = "v3.14", "2020-04-07T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


# ---------------------------------------------------------------- edge helpers


def _v3(req: ApiRequest) -> str:
    return f"{req.base_url}/identity/v3"


def _self_link(req: ApiRequest, kind: str, entity_id: str) -> dict:
    return {"self": f"{_v3(req)}/{kind}/{entity_id}"}


def _collection(req: ApiRequest, key: str, items: list) -> dict:
    query = str(req.query)
    self_url = f"{req.base_url}{req.path}" + (f"?{query}" if query else "")
    return {key: items, "links": {"self": self_url, "previous": None, "next": None}}


def _authorize(req: ApiRequest, level: str, action: str) -> None:
    """cirrus.identity.policy, answered in Keystone's words."""
    try:
        authorize(req.ctx, level, action)
    except Forbidden:
        raise Forbidden(f"You are not authorized to perform the requested action: "
                        f"identity:{action}.") from None


def _is_true(req: ApiRequest, name: str) -> bool:
    """Keystone's query flags: present and not "0"/"false" (so `?effective` alone is true)."""
    if name not in req.query:
        return False
    return req.query.get(name, "").strip().lower() not in ("0", "false")


def _bool_filter(req: ApiRequest, name: str) -> bool | None:
    return _is_true(req, name) if name in req.query else None


def _body(req: ApiRequest, schema: dict, key: str) -> dict:
    body = req.json
    validate(schema, schemas.redacted(body))
    return body[key]


def _revoke(req: ApiRequest, revocations: list[identity.Revocation]) -> None:
    for user_id, project_id in revocations:
        req.cloud.tokens.revoke_user(user_id, project_id)


def _policy(req: ApiRequest) -> PasswordPolicy:
    """The password rules and lockout settings (Keystone's [security_compliance])."""
    return PasswordPolicy.from_settings(req.cloud.settings)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _naive_iso(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


# ---------------------------------------------------------------- serialisers


def _domain_view(req: ApiRequest, d: Domain) -> dict:
    return {"id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled,
            "tags": [], "options": {}, "links": _self_link(req, "domains", d.id)}


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


def _catalog_view(req: ApiRequest) -> list[dict]:
    settings = req.cloud.settings
    return catalog.token_catalog(settings.effective_public_url, settings.region)


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
    else:
        scoped = False
    if scoped and "nocatalog" not in req.query:
        token["catalog"] = _catalog_view(req)
    return {"token": token}


# ---------------------------------------------------------------- version discovery


def _version_doc(req: ApiRequest) -> dict:
    return {"id": V3_ID, "status": "stable", "updated": V3_UPDATED,
            "links": [{"rel": "self", "href": f"{_v3(req)}/"}], "media-types": MEDIA_TYPES}


def list_versions(req: ApiRequest) -> Reply:
    return Reply(300, {"versions": {"values": [_version_doc(req)]}})


def show_v3(req: ApiRequest) -> dict:
    return {"version": _version_doc(req)}


# ---------------------------------------------------------------- tokens


@contextlib.contextmanager
def _counting_failed_logins(req: ApiRequest, policy: PasswordPolicy) -> Iterator[None]:
    """A wrong password is counted towards a lockout in a transaction of its own, once the
    one that checked it is over (nothing is counted when lockout is off)."""
    try:
        yield
    except identity.FailedLogin as exc:
        if policy.lockout_failure_attempts:
            user_id = exc.user_id
            req.cloud.db.run(lambda s: identity.record_login(s, user_id, policy, failed=True))
        raise


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
    if not (req.claims and (req.claims.project_id or req.claims.project_domain_id)):
        raise Forbidden("A project-scoped token is required to produce a service catalog.")
    return _collection(req, "catalog", _catalog_view(req))


def auth_projects(req: ApiRequest) -> dict:
    with req.cloud.db.reader() as s:
        projects = identity.projects_of_user(s, req.ctx.user_id, usable_only=True)
    return _collection(req, "projects", [_project_view(req, p) for p in projects])


def auth_domains(req: ApiRequest) -> dict:
    with req.cloud.db.reader() as s:
        domains = identity.domains_of_user(s, req.ctx.user_id)
    return _collection(req, "domains", [_domain_view(req, d) for d in domains])


# ---------------------------------------------------------------- catalog (read-only)


def _service_view(req: ApiRequest, svc: catalog.Service) -> dict:
    return {"id": svc.id, "type": svc.type, "name": svc.name, "description": svc.description,
            "enabled": svc.enabled, "links": _self_link(req, "services", svc.id)}


def _endpoint_view(req: ApiRequest, ep: catalog.Endpoint) -> dict:
    return {"id": ep.id, "interface": ep.interface, "region": ep.region, "region_id": ep.region,
            "service_id": ep.service_id, "url": ep.url, "enabled": ep.enabled,
            "links": _self_link(req, "endpoints", ep.id)}


def _region_view(req: ApiRequest, region: catalog.Region) -> dict:
    return {"id": region.id, "description": region.description,
            "parent_region_id": region.parent_region_id,
            "links": _self_link(req, "regions", region.id)}


def list_services(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_services")
    found = [svc for svc in catalog.services(req.cloud.settings)
             if req.query.get("type", svc.type) == svc.type
             and req.query.get("name", svc.name) == svc.name]
    return _collection(req, "services", [_service_view(req, svc) for svc in found])


def show_service(req: ApiRequest, service_id: str) -> dict:
    _authorize(req, ADMIN, "get_service")
    for svc in catalog.services(req.cloud.settings):
        if svc.id == service_id:
            return {"service": _service_view(req, svc)}
    raise NotFound(f"Could not find service: {service_id}.")


def list_endpoints(req: ApiRequest) -> dict:
    _authorize(req, ADMIN, "list_endpoints")
    filters = {"interface": "interface", "service_id": "service_id", "region_id": "region"}
    found = [ep for ep in catalog.endpoints(req.cloud.settings)
             if all(req.query.get(q, getattr(ep, attr)) == getattr(ep, attr)
                    for q, attr in filters.items())]
    return _collection(req, "endpoints", [_endpoint_view(req, ep) for ep in found])


def show_endpoint(req: ApiRequest, endpoint_id: str) -> dict:
    _authorize(req, ADMIN, "get_endpoint")
    for ep in catalog.endpoints(req.cloud.settings):
        if ep.id == endpoint_id:
            return {"endpoint": _endpoint_view(req, ep)}
    raise NotFound(f"Could not find endpoint: {endpoint_id}.")


def list_regions(req: ApiRequest) -> dict:
    return _collection(req, "regions", [_region_view(req, r)
                                        for r in catalog.regions(req.cloud.settings)])


def show_region(req: ApiRequest, region_id: str) -> dict:
    for region in catalog.regions(req.cloud.settings):
        if region.id == region_id:
            return {"region": _region_view(req, region)}
    raise NotFound(f"Could not find region: {region_id}.")


# ---------------------------------------------------------------- domains


def _domain_for_writes(req: ApiRequest) -> str:
    """Where a new project or user goes when the body names no domain (Keystone's rule)."""
    claims = req.claims
    if claims is not None and not claims.project_id and claims.project_domain_id:
        return claims.project_domain_id
    return identity.DEFAULT_DOMAIN_ID


def _related_domain_ids(req: ApiRequest, s: Any) -> set[str]:
    """The domains a non-admin may see: their own, their project's, those they have roles on."""
    ids = {req.ctx.domain_id} if req.ctx.domain_id else set()
    if req.claims is not None and req.claims.project_domain_id:
        ids.add(req.claims.project_domain_id)
    ids.update(d.id for d in identity.domains_of_user(s, req.ctx.user_id))
    return ids


def list_domains(req: ApiRequest) -> dict:
    with req.cloud.db.reader() as s:
        only = None if req.ctx.is_admin else _related_domain_ids(req, s)
        domains = identity.list_domains(s, name=req.query.get("name"),
                                        enabled=_bool_filter(req, "enabled"), only_ids=only)
    return _collection(req, "domains", [_domain_view(req, d) for d in domains])


def show_domain(req: ApiRequest, domain_id: str) -> dict:
    with req.cloud.db.reader() as s:
        if not req.ctx.is_admin and domain_id not in _related_domain_ids(req, s):
            raise NotFound(f"Could not find domain: {domain_id}.")
        domain = identity.get_domain(s, domain_id)
    return {"domain": _domain_view(req, domain)}


def create_domain(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_domain")
    fields = _body(req, schemas.domain_create, "domain")
    domain = req.cloud.db.run(lambda s: identity.create_domain(s, fields))
    return Reply(201, {"domain": _domain_view(req, domain)})


def update_domain(req: ApiRequest, domain_id: str) -> dict:
    _authorize(req, ADMIN, "update_domain")
    fields = _body(req, schemas.domain_update, "domain")
    domain, revocations = req.cloud.db.run(lambda s: identity.update_domain(s, domain_id, fields))
    _revoke(req, revocations)
    return {"domain": _domain_view(req, domain)}


def delete_domain(req: ApiRequest, domain_id: str) -> None:
    _authorize(req, ADMIN, "delete_domain")
    _revoke(req, req.cloud.db.run(lambda s: identity.delete_domain(s, domain_id)))


# ---------------------------------------------------------------- projects


def _visible_project_ids(req: ApiRequest, s: Any) -> set[str] | None:
    if req.ctx.is_admin:
        return None
    return {p.id for p in identity.projects_of_user(s, req.ctx.user_id)}


def list_projects(req: ApiRequest) -> dict:
    if _is_true(req, "is_domain"):  # no project acts as a domain here
        return _collection(req, "projects", [])
    with req.cloud.db.reader() as s:
        projects = identity.list_projects(
            s, name=req.query.get("name"), domain_id=req.query.get("domain_id"),
            enabled=_bool_filter(req, "enabled"), parent_id=req.query.get("parent_id"),
            only_ids=_visible_project_ids(req, s))
    return _collection(req, "projects", [_project_view(req, p) for p in projects])


def show_project(req: ApiRequest, project_id: str) -> dict:
    with req.cloud.db.reader() as s:
        visible = _visible_project_ids(req, s)
        if visible is not None and project_id not in visible:
            raise NotFound(f"Could not find project: {project_id}.")
        project = identity.get_project(s, project_id)
    return {"project": _project_view(req, project)}


def create_project(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_project")
    fields = _body(req, schemas.project_create, "project")
    default_domain = _domain_for_writes(req)
    project = req.cloud.db.run(lambda s: identity.create_project(s, fields, default_domain))
    return Reply(201, {"project": _project_view(req, project)})


def update_project(req: ApiRequest, project_id: str) -> dict:
    _authorize(req, ADMIN, "update_project")
    fields = _body(req, schemas.project_update, "project")
    project, revocations = req.cloud.db.run(
        lambda s: identity.update_project(s, project_id, fields))
    _revoke(req, revocations)
    return {"project": _project_view(req, project)}


def delete_project(req: ApiRequest, project_id: str) -> None:
    _authorize(req, ADMIN, "delete_project")
    _revoke(req, req.cloud.db.run(lambda s: identity.delete_project(s, project_id)))


# ---------------------------------------------------------------- users


def _ensure_self_or_admin(req: ApiRequest, user_id: str) -> None:
    """Another user does not exist for a non-admin caller."""
    if user_id != req.ctx.user_id and not req.ctx.is_admin:
        raise NotFound(f"Could not find user: {user_id}.")


def list_users(req: ApiRequest) -> dict:
    # A non-admin's list holds only themselves (so `openstack user show <own name>` works).
    with req.cloud.db.reader() as s:
        users = identity.list_users(s, name=req.query.get("name"),
                                    domain_id=req.query.get("domain_id"),
                                    enabled=_bool_filter(req, "enabled"),
                                    only_ids=None if req.ctx.is_admin else [req.ctx.user_id])
    return _collection(req, "users", [_user_view(req, u) for u in users])


def show_user(req: ApiRequest, user_id: str) -> dict:
    _ensure_self_or_admin(req, user_id)
    with req.cloud.db.reader() as s:
        user = identity.get_user(s, user_id)
    return {"user": _user_view(req, user)}


def create_user(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_user")
    fields = _body(req, schemas.user_create, "user")
    default_domain = _domain_for_writes(req)
    policy = _policy(req)
    user = req.cloud.db.run(lambda s: identity.create_user(s, fields, default_domain, policy))
    return Reply(201, {"user": _user_view(req, user)})


def update_user(req: ApiRequest, user_id: str) -> dict:
    _authorize(req, ADMIN, "update_user")
    fields = _body(req, schemas.user_update, "user")
    policy = _policy(req)
    user, revocations = req.cloud.db.run(lambda s: identity.update_user(s, user_id, fields,
                                                                         policy))
    _revoke(req, revocations)
    return {"user": _user_view(req, user)}


def delete_user(req: ApiRequest, user_id: str) -> None:
    _authorize(req, ADMIN, "delete_user")
    _revoke(req, req.cloud.db.run(lambda s: identity.delete_user(s, user_id)))


def change_password(req: ApiRequest, user_id: str) -> None:
    # No token needed (so an expired password can be changed): the original one authenticates.
    fields = _body(req, schemas.password_change, "user")
    policy = _policy(req)
    with _counting_failed_logins(req, policy):
        revocations = req.cloud.db.run(lambda s: identity.change_password(
            s, user_id, fields["original_password"], fields["password"], policy))
    _revoke(req, revocations)


def list_user_projects(req: ApiRequest, user_id: str) -> dict:
    _ensure_self_or_admin(req, user_id)
    with req.cloud.db.reader() as s:
        identity.get_user(s, user_id)
        projects = identity.projects_of_user(s, user_id)
    return _collection(req, "projects", [_project_view(req, p) for p in projects])


# ---------------------------------------------------------------- roles


def list_roles(req: ApiRequest) -> dict:
    _authorize(req, READ, "list_roles")
    with req.cloud.db.reader() as s:
        roles = identity.list_roles(s, name=req.query.get("name"),
                                    domain_id=req.query.get("domain_id"))
    return _collection(req, "roles", [_role_view(req, r) for r in roles])


def show_role(req: ApiRequest, role_id: str) -> dict:
    _authorize(req, READ, "get_role")
    with req.cloud.db.reader() as s:
        role = identity.get_role(s, role_id)
    return {"role": _role_view(req, role)}


def create_role(req: ApiRequest) -> Reply:
    _authorize(req, ADMIN, "create_role")
    fields = _body(req, schemas.role_create, "role")
    role = req.cloud.db.run(lambda s: identity.create_role(s, fields))
    return Reply(201, {"role": _role_view(req, role)})


def update_role(req: ApiRequest, role_id: str) -> dict:
    _authorize(req, ADMIN, "update_role")
    fields = _body(req, schemas.role_update, "role")
    role = req.cloud.db.run(lambda s: identity.update_role(s, role_id, fields))
    return {"role": _role_view(req, role)}


def delete_role(req: ApiRequest, role_id: str) -> None:
    _authorize(req, ADMIN, "delete_role")
    _revoke(req, req.cloud.db.run(lambda s: identity.delete_role(s, role_id)))


# ---------------------------------------------------------------- grants


def _grant_handlers(target_type: str) -> tuple[Callable[..., Any], ...]:
    """Handlers of /v3/{projects|domains}/{id}/users/{user_id}/roles[/{role_id}]."""
    key = f"{target_type}_id"

    def list_grants(req: ApiRequest, user_id: str, **target: str) -> dict:
        if user_id != req.ctx.user_id:
            _authorize(req, ADMIN, "list_grants")
        with req.cloud.db.reader() as s:
            roles = identity.roles_of_user_on(s, target_type, target[key], user_id)
        return _collection(req, "roles", [_role_view(req, r) for r in roles])

    def check_grant(req: ApiRequest, user_id: str, role_id: str, **target: str) -> Reply:
        if user_id != req.ctx.user_id:
            _authorize(req, ADMIN, "check_grant")
        with req.cloud.db.reader() as s:
            identity.check_grant(s, target_type, target[key], user_id, role_id)
        return Reply(204)

    def create_grant(req: ApiRequest, user_id: str, role_id: str, **target: str) -> None:
        _authorize(req, ADMIN, "create_grant")
        req.cloud.db.run(lambda s: identity.grant_role(s, target_type, target[key], user_id,
                                                       role_id))

    def revoke_grant(req: ApiRequest, user_id: str, role_id: str, **target: str) -> None:
        _authorize(req, ADMIN, "revoke_grant")
        _revoke(req, req.cloud.db.run(lambda s: identity.revoke_role(
            s, target_type, target[key], user_id, role_id)))

    return list_grants, check_grant, create_grant, revoke_grant


_project_grants = _grant_handlers("project")
_domain_grants = _grant_handlers("domain")


def _assignment_view(req: ApiRequest, a: identity.Assignment, names: bool,
                     domain_names: dict[str, str]) -> dict:
    kind = "projects" if a.target_type == "project" else "domains"
    links = {"assignment": f"{_v3(req)}/{kind}/{a.target.id}/users/{a.user.id}/roles/"
                           f"{(a.prior_role or a.role).id}"}
    if a.prior_role is not None:
        links["prior_role"] = f"{_v3(req)}/roles/{a.prior_role.id}"
    role: dict[str, Any] = {"id": a.role.id}
    user: dict[str, Any] = {"id": a.user.id}
    target: dict[str, Any] = {"id": a.target.id}
    if names:
        role["name"] = a.role.name
        if a.role.domain_id:
            role["domain"] = {"id": a.role.domain_id,
                              "name": domain_names.get(a.role.domain_id, a.role.domain_id)}
        user["name"] = a.user.name
        user["domain"] = {"id": a.user.domain_id,
                          "name": domain_names.get(a.user.domain_id, a.user.domain_id)}
        target["name"] = a.target.name
        if isinstance(a.target, Project):
            target["domain"] = {"id": a.target.domain_id,
                                "name": domain_names.get(a.target.domain_id, a.target.domain_id)}
    return {"role": role, "user": user, "scope": {a.target_type: target}, "links": links}


def list_role_assignments(req: ApiRequest) -> dict:
    user_id = req.query.get("user.id")
    if not req.ctx.is_admin:  # a non-admin sees their own assignments only
        if user_id not in (None, req.ctx.user_id):
            _authorize(req, ADMIN, "list_role_assignments")
        user_id = req.ctx.user_id
    unsupported = ("group.id", "scope.system", "scope.OS-INHERIT:inherited_to")
    if any(req.query.get(name) for name in unsupported):  # no groups, system or inheritance
        return _collection(req, "role_assignments", [])
    names = _is_true(req, "include_names")
    with req.cloud.db.reader() as s:
        found = identity.list_assignments(
            s, user_id=user_id, role_id=req.query.get("role.id"),
            project_id=req.query.get("scope.project.id"),
            domain_id=req.query.get("scope.domain.id"), effective=_is_true(req, "effective"))
        domain_names = {d.id: d.name for d in identity.list_domains(s)} if names else {}
    return _collection(req, "role_assignments",
                       [_assignment_view(req, a, names, domain_names) for a in found])


# ---------------------------------------------------------------- routes

_PROJECT_GRANT = "/v3/projects/{project_id}/users/{user_id}/roles"
_DOMAIN_GRANT = "/v3/domains/{domain_id}/users/{user_id}/roles"

ROUTES: list = [
    ("GET", "/", list_versions, FAST_NOAUTH),
    ("GET", "/v3", show_v3, FAST_NOAUTH),
    ("GET", "/v3/", show_v3, FAST_NOAUTH),
    ("POST", "/v3/auth/tokens", issue_token, NOAUTH),
    ("GET", "/v3/auth/tokens", validate_token, FAST),
    ("HEAD", "/v3/auth/tokens", check_token, FAST),
    ("DELETE", "/v3/auth/tokens", revoke_token),
    ("GET", "/v3/auth/catalog", auth_catalog),
    ("GET", "/v3/auth/projects", auth_projects),
    ("GET", "/v3/auth/domains", auth_domains),
    ("GET", "/v3/services", list_services),
    ("GET", "/v3/services/{service_id}", show_service),
    ("GET", "/v3/endpoints", list_endpoints),
    ("GET", "/v3/endpoints/{endpoint_id}", show_endpoint),
    ("GET", "/v3/regions", list_regions),
    ("GET", "/v3/regions/{region_id}", show_region),
    ("GET", "/v3/domains", list_domains),
    ("POST", "/v3/domains", create_domain),
    ("GET", "/v3/domains/{domain_id}", show_domain),
    ("PATCH", "/v3/domains/{domain_id}", update_domain),
    ("DELETE", "/v3/domains/{domain_id}", delete_domain),
    ("GET", "/v3/projects", list_projects),
    ("POST", "/v3/projects", create_project),
    ("GET", "/v3/projects/{project_id}", show_project),
    ("PATCH", "/v3/projects/{project_id}", update_project),
    ("DELETE", "/v3/projects/{project_id}", delete_project),
    ("GET", "/v3/users", list_users),
    ("POST", "/v3/users", create_user),
    ("GET", "/v3/users/{user_id}", show_user),
    ("PATCH", "/v3/users/{user_id}", update_user),
    ("DELETE", "/v3/users/{user_id}", delete_user),
    ("GET", "/v3/users/{user_id}/projects", list_user_projects),
    ("POST", "/v3/users/{user_id}/password", change_password, NOAUTH),
    ("GET", "/v3/roles", list_roles),
    ("POST", "/v3/roles", create_role),
    ("GET", "/v3/roles/{role_id}", show_role),
    ("PATCH", "/v3/roles/{role_id}", update_role),
    ("DELETE", "/v3/roles/{role_id}", delete_role),
    ("GET", _PROJECT_GRANT, _project_grants[0]),
    ("HEAD", _PROJECT_GRANT + "/{role_id}", _project_grants[1]),
    ("PUT", _PROJECT_GRANT + "/{role_id}", _project_grants[2]),
    ("DELETE", _PROJECT_GRANT + "/{role_id}", _project_grants[3]),
    ("GET", _DOMAIN_GRANT, _domain_grants[0]),
    ("HEAD", _DOMAIN_GRANT + "/{role_id}", _domain_grants[1]),
    ("PUT", _DOMAIN_GRANT + "/{role_id}", _domain_grants[2]),
    ("DELETE", _DOMAIN_GRANT + "/{role_id}", _domain_grants[3]),
    ("GET", "/v3/role_assignments", list_role_assignments),
]


def routes():  # noqa: ANN201
    return make_routes(ROUTES, service="identity")
