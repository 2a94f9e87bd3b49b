"""Users, projects, domains, roles and role assignments: queries and writes.

Every function takes an open session and returns plain model objects. Writes that take
rights away (disable, delete, unassign, password change) return the token revocations the
caller must apply once the transaction has committed: `[(user_id, project_id or None)]`,
None meaning every token of that user.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.db.models import Domain, Project, Role, RoleAssignment, User, utcnow
from cirrus.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from cirrus.identity.compliance import (
    BOOTSTRAP_ADMIN_OPTIONS,
    LOCK_PASSWORD,
    PasswordPolicy,
    expired_error,
    locked_error,
    password_expired,
    user_options,
)
from cirrus.identity.passwords import hash_password, verify_password
from cirrus.identity.policy import IMPLIED_ROLES, expand_roles

log = logging.getLogger(__name__)

DEFAULT_DOMAIN_ID = "default"
DEFAULT_ROLES = ("admin", "member", "reader")

Revocation = tuple[str, str | None]
DEFAULT_POLICY = PasswordPolicy()


class FailedLogin(Unauthorized):
    """A wrong password for a known user. Raised out of the transaction that checked it, so
    the caller can count it towards a lockout in a transaction of its own."""

    def __init__(self, user_id: str) -> None:
        super().__init__()
        self.user_id = user_id

# Keys a client may not set as free-form extra attributes of a project or user.
_RESERVED = frozenset({"id", "links", "name", "description", "domain_id", "enabled", "parent_id",
                       "is_domain", "tags", "options", "password", "email", "default_project_id",
                       "password_expires_at", "federated"})


def new_id() -> str:
    return uuid.uuid4().hex


def ensure_default_domain(s: Session) -> Domain:
    domain = s.get(Domain, DEFAULT_DOMAIN_ID)
    if domain is None:
        domain = Domain(id=DEFAULT_DOMAIN_ID, name="Default", description="The default domain",
                        enabled=True)
        s.add(domain)
        s.flush()
    return domain


def ensure_role(s: Session, name: str) -> Role:
    role = s.scalar(select(Role).where(Role.name == name))
    if role is None:
        role = Role(id=new_id(), name=name, description="")
        s.add(role)
        s.flush()
    return role


def ensure_project(s: Session, name: str, domain_id: str = DEFAULT_DOMAIN_ID,
                   description: str = "") -> Project:
    project = s.scalar(select(Project).where(Project.name == name, Project.domain_id == domain_id))
    if project is None:
        project = Project(id=new_id(), name=name, domain_id=domain_id, description=description,
                          enabled=True, extra={})
        s.add(project)
        s.flush()
    return project


def ensure_user(s: Session, name: str, password: str | None, domain_id: str = DEFAULT_DOMAIN_ID,
                default_project_id: str | None = None) -> User:
    user = s.scalar(select(User).where(User.name == name, User.domain_id == domain_id))
    if user is None:
        user = User(id=new_id(), name=name, domain_id=domain_id, enabled=True, extra={},
                    password_hash=hash_password(password) if password else None,
                    password_created_at=utcnow() if password else None,
                    default_project_id=default_project_id)
        s.add(user)
        s.flush()
    return user


def _set_password(user: User, password: str | None, policy: PasswordPolicy, *,
                  by_admin: bool) -> None:
    """Set (or, with None, remove) a user's password: history, age and expiry with it."""
    now = utcnow()
    keep = policy.history_size()
    history = list(user.password_history or []) if keep else []
    if keep and user.password_hash:
        history.append(user.password_hash)
    user.password_history = history[-keep:] if keep else []
    user.password_hash = hash_password(password) if password else None
    user.password_created_at = now if password else None
    user.password_self_service = not by_admin
    user.password_expires_at = (policy.expires_at(user, now, by_admin=by_admin)
                                if password else None)


def reset_password(user: User, password: str, policy: PasswordPolicy = DEFAULT_POLICY) -> None:
    """An administrator's reset (`cirrus bootstrap`): also lifts a lockout."""
    _set_password(user, password, policy, by_admin=True)
    user.failed_auth_count = 0


def ensure_assignment(s: Session, role_id: str, user_id: str, target_id: str,
                      target_type: str = "project") -> None:
    exists = s.scalar(select(RoleAssignment.id).where(
        RoleAssignment.role_id == role_id, RoleAssignment.actor_id == user_id,
        RoleAssignment.target_id == target_id))
    if exists is None:
        s.add(RoleAssignment(role_id=role_id, actor_id=user_id, target_id=target_id,
                             target_type=target_type))
        s.flush()


def bootstrap(s: Session, admin_user: str, admin_password: str, admin_project: str) -> User:
    """Idempotent first start: Default domain, admin/member/reader roles, admin user+project."""
    ensure_default_domain(s)
    roles = {name: ensure_role(s, name) for name in DEFAULT_ROLES}
    project = ensure_project(s, admin_project, description="Bootstrap project for the admin")
    ensure_project(s, "service", description="Project for Cirrus's own service users")
    user = ensure_user(s, admin_user, admin_password, default_project_id=project.id)
    # The cloud's own administrator is exempt from lockout and expiry unless an operator has
    # set these options otherwise: a cloud must not be able to lock itself out.
    options = user_options(user)
    if any(name not in options for name in BOOTSTRAP_ADMIN_OPTIONS):
        user.extra = {**(user.extra or {}),
                      "options": {**BOOTSTRAP_ADMIN_OPTIONS, **options}}
    ensure_assignment(s, roles["admin"].id, user.id, project.id)
    ensure_assignment(s, roles["admin"].id, user.id, DEFAULT_DOMAIN_ID, target_type="domain")
    return user


def project_role_names(s: Session, user_id: str, project_id: str) -> list[Role]:
    return _roles_on(s, user_id, project_id, "project")


def _roles_on(s: Session, user_id: str, target_id: str, target_type: str) -> list[Role]:
    return list(s.scalars(
        select(Role).join(RoleAssignment, RoleAssignment.role_id == Role.id)
        .where(RoleAssignment.actor_id == user_id, RoleAssignment.target_id == target_id,
               RoleAssignment.target_type == target_type)
        .order_by(Role.name)
    ))


def _expanded_role_refs(s: Session, assigned: list[Role]) -> list[dict]:
    """Assigned roles plus the ones they imply, as [{"id", "name"}] (what a token carries)."""
    names = expand_roles([r.name for r in assigned])
    by_name = {r.name: r for r in assigned}
    missing = [n for n in names if n not in by_name]
    if missing:
        by_name.update({r.name: r for r in s.scalars(select(Role).where(Role.name.in_(missing)))})
    return [{"id": by_name[n].id, "name": n} for n in names if n in by_name]


def build_claims(s: Session, tokens, user: User, project: Project | None,  # noqa: ANN001
                 *, domain: Domain | None = None, methods: list[str] | None = None):  # noqa: ANN201
    """Claims for a token of `user`, scoped to `project`, else to `domain`, else unscoped.

    Implied roles are included (admin implies member implies reader), as Keystone does.
    A domain-scoped token carries the domain in the project_domain fields and no project.
    """
    user_domain = s.get(Domain, user.domain_id)
    kwargs: dict = dict(user_id=user.id, user_name=user.name, user_domain_id=user.domain_id,
                        user_domain_name=user_domain.name if user_domain else user.domain_id,
                        methods=list(methods or ["password"]))
    if user.password_expires_at is not None:
        kwargs["password_expires_at"] = user.password_expires_at.replace(
            tzinfo=dt.UTC).timestamp()
    if project is not None:
        assigned = _roles_on(s, user.id, project.id, "project")
        if not assigned:
            log.info("user %s has no role on project %s", user.id, project.id)
            raise Unauthorized()
        project_domain = s.get(Domain, project.domain_id)
        kwargs.update(
            project_id=project.id, project_name=project.name, project_domain_id=project.domain_id,
            project_domain_name=project_domain.name if project_domain else project.domain_id,
            roles=_expanded_role_refs(s, assigned),
        )
    elif domain is not None:
        assigned = _roles_on(s, user.id, domain.id, "domain")
        if not assigned:
            log.info("user %s has no role on domain %s", user.id, domain.id)
            raise Unauthorized()
        kwargs.update(project_domain_id=domain.id, project_domain_name=domain.name,
                      roles=_expanded_role_refs(s, assigned))
    return tokens.new_claims(**kwargs)


# ---------------------------------------------------------------- authentication


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(uuid.uuid4().hex)


def _auth_failure(reason: str, *args: object) -> Unauthorized:
    """One answer for every failure, so a caller cannot tell which part was wrong."""
    log.info("authentication failed: " + reason, *args)
    return Unauthorized()


def _domain_by_ref(s: Session, ref: dict) -> Domain | None:
    if ref.get("id"):
        return s.get(Domain, ref["id"])
    if ref.get("name"):
        return s.scalar(select(Domain).where(Domain.name == ref["name"]))
    return None


_MALFORMED = ("The server could not comply with the request since it is either malformed or "
              "otherwise incorrect. The client is assumed to be in error.")


def _named_in_domain(s: Session, model: type[User] | type[Project], ref: dict,
                     kind: str) -> User | Project | None:
    """What `ref` names: {"id"} or {"name", "domain": {"id" or "name"}}; None if nothing."""
    if ref.get("id"):
        return s.get(model, ref["id"])
    if not ref.get("name"):
        raise BadRequest(f"Expecting to find id or name in {kind}. {_MALFORMED}")
    domain_ref = ref.get("domain")
    if not domain_ref or not (domain_ref.get("id") or domain_ref.get("name")):
        raise BadRequest(f"Expecting to find domain in {kind}. {_MALFORMED}")
    domain = _domain_by_ref(s, domain_ref)
    if domain is None:
        return None
    return s.scalar(select(model).where(model.name == ref["name"], model.domain_id == domain.id))


def _check_password(s: Session, user: User | None, password: str,
                    policy: PasswordPolicy) -> User:
    """`user` if `password` is theirs; Keystone's order: locked, password, enabled."""
    if user is not None and policy.is_locked(user, utcnow()):
        log.info("authentication failed: user %s is locked out", user.id)
        raise locked_error(user.id)
    if len(password) > policy.max_password_length:
        matches = False  # no stored password is that long: refused without hashing it
    else:
        # Verify against a dummy hash for unknown users too: the time taken tells nothing.
        matches = verify_password(user.password_hash if user else _dummy_hash(), password)
    if user is None:
        raise _auth_failure("unknown user")
    if not matches:
        log.info("authentication failed: wrong password for user %s", user.id)
        raise FailedLogin(user.id)
    _check_user_enabled(s, user)
    return user


def authenticate_password(s: Session, user_ref: dict, password: str,
                          policy: PasswordPolicy = DEFAULT_POLICY) -> User:
    """The enabled user that `user_ref` ({"id"} or {"name", "domain"}) names, if `password` fits
    and has not expired."""
    user = _check_password(s, _named_in_domain(s, User, user_ref, "user"), password, policy)
    if password_expired(user, utcnow()):
        log.info("authentication failed: the password of user %s has expired", user.id)
        raise expired_error(user.id)
    return user


def record_login(s: Session, user_id: str, policy: PasswordPolicy, *, failed: bool) -> None:
    """Count a failed login towards a lockout, or clear the count after a successful one."""
    if failed:
        policy.record_failure(s, user_id)
    else:
        user = s.get(User, user_id)
        if user is not None:
            user.failed_auth_count = 0


def authenticate(s: Session, tokens, identity: dict, scope: Any,  # noqa: ANN001, ANN201
                 policy: PasswordPolicy = DEFAULT_POLICY):
    """Claims for a new token from a Keystone auth request's identity and scope, and its user.

    Methods: "password", or "token" (re-scoping a valid token; the new one expires no later).
    """
    methods = identity["methods"]
    if any(m not in ("password", "token") for m in methods):
        raise Unauthorized("Attempted to authenticate with an unsupported method.")
    method = "password" if "password" in methods else "token"
    if method not in identity:
        raise BadRequest(f"Expecting to find {method} in identity. {_MALFORMED}")
    parent = None
    if method == "password":
        user_ref = identity["password"]["user"]
        user = authenticate_password(s, user_ref, user_ref["password"], policy)
        token_methods = ["password"]
    else:
        try:
            parent = tokens.validate(identity["token"]["id"])
        except NotFound:
            raise _auth_failure("the token to re-scope is invalid") from None
        user = user_of_token(s, parent.user_id)
        token_methods = list(dict.fromkeys(["token", *parent.methods]))
    project, domain = resolve_scope(s, user, scope)
    claims = build_claims(s, tokens, user, project, domain=domain, methods=token_methods)
    if parent is not None:
        claims.expires_at = min(claims.expires_at, parent.expires_at)
    return claims, user


def _check_user_enabled(s: Session, user: User) -> None:
    if not user.enabled:
        raise _auth_failure("user %s is disabled", user.id)
    domain = s.get(Domain, user.domain_id)
    if domain is None or not domain.enabled:
        raise _auth_failure("domain of user %s is disabled", user.id)


def user_of_token(s: Session, user_id: str) -> User:
    """The still enabled user a token (used to get another token) belongs to."""
    user = s.get(User, user_id)
    if user is None:
        raise _auth_failure("user %s of the token no longer exists", user_id)
    _check_user_enabled(s, user)
    return user


def _usable_project(s: Session, project: Project | None) -> Project | None:
    if project is None or not project.enabled:
        return None
    domain = s.get(Domain, project.domain_id)
    return project if domain is not None and domain.enabled else None


def resolve_scope(s: Session, user: User, scope: Any) -> tuple[Project | None, Domain | None]:
    """The project or domain a token request asks for.

    No scope at all means the user's default project when it is usable (Keystone's rule);
    "unscoped" asks explicitly for an unscoped token.
    """
    if scope == "unscoped":
        return None, None
    if not scope:
        project = _usable_project(s, s.get(Project, user.default_project_id)
                                  if user.default_project_id else None)
        if project is not None and _roles_on(s, user.id, project.id, "project"):
            return project, None
        return None, None
    kinds = [k for k in ("project", "domain", "system", "OS-TRUST:trust") if k in scope]
    if len(kinds) != 1:
        raise BadRequest("Exactly one of project, domain or system may be given as the scope.")
    if kinds[0] == "project":
        ref = scope["project"]
        project = _named_in_domain(s, Project, ref, "project")
        usable = _usable_project(s, project)
        if usable is None:
            raise _auth_failure("project scope %s unknown or disabled", ref)
        return usable, None
    if kinds[0] == "domain":
        domain = _domain_by_ref(s, scope["domain"])
        if domain is None or not domain.enabled:
            raise _auth_failure("domain scope %s unknown or disabled", scope["domain"])
        return None, domain
    raise _auth_failure("%s scope is not supported", kinds[0])


# ---------------------------------------------------------------- shared helpers


def _conflict(kind: str, details: str) -> Conflict:
    return Conflict(f"Conflict occurred attempting to store {kind} - {details}.")


def _flush(s: Session, kind: str, details: str) -> None:
    """Flush, turning a unique-constraint race into the same 409 the pre-check gives."""
    try:
        s.flush()
    except IntegrityError as exc:
        raise _conflict(kind, details) from exc


def extra_attributes(extra: dict | None) -> dict:
    """The free-form attributes Keystone returns flattened into a project or user."""
    return {k: v for k, v in (extra or {}).items() if k not in _RESERVED}


def _merge_extra(current: dict | None, fields: dict) -> dict:
    merged = dict(current or {})
    for key, value in fields.items():
        if key in ("tags", "options") or key not in _RESERVED:
            merged[key] = value
    return merged


def _revoke_project_users(s: Session, project_ids: Iterable[str]) -> list[Revocation]:
    rows = s.execute(select(RoleAssignment.actor_id, RoleAssignment.target_id).where(
        RoleAssignment.target_type == "project", RoleAssignment.target_id.in_(list(project_ids))
    )).all()
    return sorted({(row.actor_id, row.target_id) for row in rows})


# ---------------------------------------------------------------- domains


def get_domain(s: Session, domain_id: str) -> Domain:
    domain = s.get(Domain, domain_id)
    if domain is None:
        raise NotFound(f"Could not find domain: {domain_id}.")
    return domain


def list_domains(s: Session, *, name: str | None = None, enabled: bool | None = None,
                 only_ids: Iterable[str] | None = None) -> list[Domain]:
    query = select(Domain).order_by(Domain.name)
    if name is not None:
        query = query.where(Domain.name == name)
    if enabled is not None:
        query = query.where(Domain.enabled == enabled)
    if only_ids is not None:
        query = query.where(Domain.id.in_(list(only_ids)))
    return list(s.scalars(query))


def create_domain(s: Session, fields: dict) -> Domain:
    domain_id = fields.get("explicit_domain_id") or new_id()
    if s.get(Domain, domain_id) is not None or s.get(Project, domain_id) is not None:
        raise _conflict("domain", f"Duplicate ID, {domain_id}")
    if s.scalar(select(Domain.id).where(Domain.name == fields["name"])) is not None:
        raise _conflict("domain", f"Duplicate entry found with name {fields['name']}")
    domain = Domain(id=domain_id, name=fields["name"], description=fields.get("description") or "",
                    enabled=fields.get("enabled", True))
    s.add(domain)
    _flush(s, "domain", f"Duplicate entry found with name {fields['name']}")
    return domain


def update_domain(s: Session, domain_id: str, fields: dict) -> tuple[Domain, list[Revocation]]:
    domain = get_domain(s, domain_id)
    revocations: list[Revocation] = []
    if "name" in fields and fields["name"] != domain.name:
        if s.scalar(select(Domain.id).where(Domain.name == fields["name"])) is not None:
            raise _conflict("domain", f"Duplicate entry found with name {fields['name']}")
        domain.name = fields["name"]
    if "description" in fields:
        domain.description = fields["description"] or ""
    if "enabled" in fields:
        if domain.enabled and not fields["enabled"]:
            revocations = _domain_revocations(s, domain.id)
        domain.enabled = fields["enabled"]
    _flush(s, "domain", f"Duplicate entry found with name {domain.name}")
    return domain, revocations


def _domain_revocations(s: Session, domain_id: str) -> list[Revocation]:
    """Everything a disabled or deleted domain takes away: its users' and projects' tokens."""
    users = set(s.scalars(select(User.id).where(User.domain_id == domain_id)))
    users |= set(s.scalars(select(RoleAssignment.actor_id).where(
        RoleAssignment.target_type == "domain", RoleAssignment.target_id == domain_id)))
    project_ids = list(s.scalars(select(Project.id).where(Project.domain_id == domain_id)))
    result = {(u, None) for u in users} | set(_revoke_project_users(s, project_ids))
    return sorted(result, key=lambda r: (r[0], r[1] or ""))


def delete_domain(s: Session, domain_id: str) -> list[Revocation]:
    """Delete a disabled domain with its projects, users and their role assignments."""
    domain = get_domain(s, domain_id)
    if domain.enabled:
        raise Forbidden("You are not authorized to perform the requested action: Cannot delete "
                        "a domain that is enabled, please disable it first.")
    if domain.id == DEFAULT_DOMAIN_ID:
        raise Forbidden("You are not authorized to perform the requested action: the default "
                        "domain cannot be deleted.")
    revocations = _domain_revocations(s, domain.id)
    project_ids = list(s.scalars(select(Project.id).where(Project.domain_id == domain.id)))
    user_ids = list(s.scalars(select(User.id).where(User.domain_id == domain.id)))
    s.execute(delete(RoleAssignment).where(
        RoleAssignment.target_id.in_([*project_ids, domain.id]) |
        RoleAssignment.actor_id.in_(user_ids)))
    s.execute(delete(Project).where(Project.domain_id == domain.id))
    s.execute(delete(User).where(User.domain_id == domain.id))
    s.execute(delete(Role).where(Role.domain_id == domain.id))
    s.delete(domain)
    return revocations


# ---------------------------------------------------------------- projects


def get_project(s: Session, project_id: str) -> Project:
    project = s.get(Project, project_id)
    if project is None:
        raise NotFound(f"Could not find project: {project_id}.")
    return project


def list_projects(s: Session, *, name: str | None = None, domain_id: str | None = None,
                  enabled: bool | None = None, parent_id: str | None = None,
                  only_ids: Iterable[str] | None = None) -> list[Project]:
    query = select(Project).order_by(Project.name, Project.id)
    if name is not None:
        query = query.where(Project.name == name)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    if enabled is not None:
        query = query.where(Project.enabled == enabled)
    if only_ids is not None:
        query = query.where(Project.id.in_(list(only_ids)))
    projects = list(s.scalars(query))
    if parent_id is not None:
        projects = [p for p in projects if (p.parent_id or p.domain_id) == parent_id]
    return projects


def create_project(s: Session, fields: dict, default_domain_id: str) -> Project:
    domain_id = fields.get("domain_id") or default_domain_id
    get_domain(s, domain_id)
    parent_id = fields.get("parent_id")
    if parent_id and parent_id != domain_id:
        parent = get_project(s, parent_id)
        if parent.domain_id != domain_id:
            raise BadRequest("Cannot create project, the parent is in a different domain.")
    else:
        parent_id = None
    name = fields["name"]
    duplicate = f"Duplicate entry found with name {name} at domain ID {domain_id}"
    if s.scalar(select(Project.id).where(Project.name == name,
                                         Project.domain_id == domain_id)) is not None:
        raise _conflict("project", duplicate)
    project = Project(id=new_id(), name=name, domain_id=domain_id,
                      description=fields.get("description") or "",
                      enabled=fields.get("enabled", True), parent_id=parent_id,
                      extra=_merge_extra({"tags": [], "options": {}}, fields))
    s.add(project)
    _flush(s, "project", duplicate)
    return project


def update_project(s: Session, project_id: str, fields: dict) -> tuple[Project, list[Revocation]]:
    project = get_project(s, project_id)
    for key in ("domain_id", "parent_id"):
        current = project.domain_id if key == "domain_id" else (project.parent_id or
                                                                 project.domain_id)
        if key in fields and fields[key] != current:
            raise BadRequest(f"Update of `{key}` is not allowed.")
    revocations: list[Revocation] = []
    name = fields.get("name", project.name)
    duplicate = f"Duplicate entry found with name {name} at domain ID {project.domain_id}"
    if name != project.name:
        if s.scalar(select(Project.id).where(Project.name == name,
                                             Project.domain_id == project.domain_id)) is not None:
            raise _conflict("project", duplicate)
        project.name = name
    if "description" in fields:
        project.description = fields["description"] or ""
    if "enabled" in fields:
        if project.enabled and not fields["enabled"]:
            revocations = _revoke_project_users(s, [project.id])
        project.enabled = fields["enabled"]
    project.extra = _merge_extra(project.extra, fields)
    _flush(s, "project", duplicate)
    return project, revocations


def delete_project(s: Session, project_id: str) -> list[Revocation]:
    project = get_project(s, project_id)
    if s.scalar(select(Project.id).where(Project.parent_id == project.id).limit(1)) is not None:
        raise Forbidden(f"You are not authorized to perform the requested action: cannot delete "
                        f"the project {project.id} since it is not a leaf in the hierarchy.")
    revocations = _revoke_project_users(s, [project.id])
    s.execute(delete(RoleAssignment).where(RoleAssignment.target_type == "project",
                                           RoleAssignment.target_id == project.id))
    s.delete(project)
    return revocations


def projects_of_user(s: Session, user_id: str, *, usable_only: bool = False) -> list[Project]:
    """Projects the user holds a role on (usable_only: enabled, in an enabled domain)."""
    project_ids = set(s.scalars(select(RoleAssignment.target_id).where(
        RoleAssignment.actor_id == user_id, RoleAssignment.target_type == "project")))
    projects = list_projects(s, only_ids=project_ids) if project_ids else []
    if usable_only:
        projects = [p for p in projects if _usable_project(s, p) is not None]
    return projects


def domains_of_user(s: Session, user_id: str) -> list[Domain]:
    """Enabled domains the user holds a role on."""
    domain_ids = set(s.scalars(select(RoleAssignment.target_id).where(
        RoleAssignment.actor_id == user_id, RoleAssignment.target_type == "domain")))
    return list_domains(s, enabled=True, only_ids=domain_ids) if domain_ids else []


# ---------------------------------------------------------------- users


def get_user(s: Session, user_id: str) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise NotFound(f"Could not find user: {user_id}.")
    return user


def list_users(s: Session, *, name: str | None = None, domain_id: str | None = None,
               enabled: bool | None = None, only_ids: Iterable[str] | None = None) -> list[User]:
    query = select(User).order_by(User.name, User.id)
    if only_ids is not None:
        query = query.where(User.id.in_(list(only_ids)))
    if name is not None:
        query = query.where(User.name == name)
    if domain_id is not None:
        query = query.where(User.domain_id == domain_id)
    if enabled is not None:
        query = query.where(User.enabled == enabled)
    return list(s.scalars(query))


def _merge_user_extra(current: dict | None, fields: dict) -> dict:
    """As _merge_extra, but options are merged one by one (null removes one), as Keystone's."""
    merged = _merge_extra(current, {k: v for k, v in fields.items() if k != "options"})
    if "options" in fields:
        options = {**(current or {}).get("options", {}), **(fields["options"] or {})}
        merged["options"] = {k: v for k, v in options.items() if v is not None}
    return merged


def create_user(s: Session, fields: dict, default_domain_id: str,
                policy: PasswordPolicy = DEFAULT_POLICY) -> User:
    domain_id = fields.get("domain_id") or default_domain_id
    get_domain(s, domain_id)
    name = fields["name"]
    duplicate = f"Duplicate entry found with name {name} at domain ID {domain_id}"
    if s.scalar(select(User.id).where(User.name == name, User.domain_id == domain_id)) is not None:
        raise _conflict("user", duplicate)
    password = fields.get("password")
    if password is not None:
        policy.check_new(password)
    user = User(id=new_id(), name=name, domain_id=domain_id, enabled=fields.get("enabled", True),
                description=fields.get("description") or "", email=fields.get("email"),
                default_project_id=fields.get("default_project_id"),
                extra=_merge_user_extra({"options": {}}, fields), password_history=[],
                failed_auth_count=0)
    _set_password(user, password, policy, by_admin=True)
    s.add(user)
    _flush(s, "user", duplicate)
    return user


def update_user(s: Session, user_id: str, fields: dict,
                policy: PasswordPolicy = DEFAULT_POLICY) -> tuple[User, list[Revocation]]:
    """An administrator's update. A password set here is a reset: checked for length and
    complexity, not against the history or the minimum age (as Keystone)."""
    user = get_user(s, user_id)
    if fields.get("password") is not None:
        policy.check_new(fields["password"])
    if "domain_id" in fields and fields["domain_id"] != user.domain_id:
        raise BadRequest("Update of `domain_id` is not allowed.")
    revoke = False
    name = fields.get("name", user.name)
    duplicate = f"Duplicate entry found with name {name} at domain ID {user.domain_id}"
    if name != user.name:
        if s.scalar(select(User.id).where(User.name == name,
                                          User.domain_id == user.domain_id)) is not None:
            raise _conflict("user", duplicate)
        user.name = name
    user.extra = _merge_user_extra(user.extra, fields)  # options first: they rule the expiry
    if "password" in fields:
        _set_password(user, fields["password"], policy, by_admin=True)
        revoke = True
    if "enabled" in fields:
        revoke = revoke or (user.enabled and not fields["enabled"])
        if fields["enabled"]:
            user.failed_auth_count = 0  # enabling a user lifts a lockout (Keystone)
        user.enabled = fields["enabled"]
    if "description" in fields:
        user.description = fields["description"] or ""
    if "email" in fields:
        user.email = fields["email"]
    if "default_project_id" in fields:
        user.default_project_id = fields["default_project_id"]
    _flush(s, "user", duplicate)
    return user, [(user.id, None)] if revoke else []


def change_password(s: Session, user_id: str, original_password: str, password: str,
                    policy: PasswordPolicy = DEFAULT_POLICY) -> list[Revocation]:
    """A user changing their own password: the original one authenticates the request (and
    may have expired: that is how an expired password gets changed)."""
    if not password:
        raise BadRequest("Invalid input for field/attribute user/password. A new password "
                         "may not be empty.")
    if len(password) > policy.max_password_length:
        policy.check_new(password)  # a 400 before any hashing
    user = _check_password(s, s.get(User, user_id), original_password, policy)
    if user_options(user).get(LOCK_PASSWORD):
        raise BadRequest("You cannot change your password at this time due to password policy "
                         "disallowing password changes. Please contact your administrator to "
                         "reset your password.")
    now = utcnow()
    if policy.minimum_password_age and user.password_self_service and user.password_created_at:
        usable_from = user.password_created_at + dt.timedelta(days=policy.minimum_password_age)
        if now < usable_from:
            raise BadRequest(
                f"You cannot change your password at this time due to the minimum password "
                f"age. Once you change your password, it must be used for "
                f"{policy.minimum_password_age} day(s) before it can be changed. Please try "
                f"again in {(usable_from - now).days} day(s) or contact your administrator to "
                f"reset your password.")
    policy.check_new(password)
    count = policy.unique_last_password_count
    if count > 0:
        earlier = list(user.password_history or [])[-(count - 1):] if count > 1 else []
        recent = [*earlier, user.password_hash]
        if any(verify_password(h, password) for h in recent):
            raise BadRequest(f"The new password cannot be identical to a previous password. "
                             f"The total number which includes the new password must be "
                             f"unique is {count}.")
    _set_password(user, password, policy, by_admin=False)
    user.failed_auth_count = 0
    return [(user.id, None)]


def delete_user(s: Session, user_id: str) -> list[Revocation]:
    user = get_user(s, user_id)
    s.execute(delete(RoleAssignment).where(RoleAssignment.actor_id == user.id))
    s.delete(user)
    return [(user.id, None)]


# ---------------------------------------------------------------- roles


def get_role(s: Session, role_id: str) -> Role:
    role = s.get(Role, role_id)
    if role is None:
        raise NotFound(f"Could not find role: {role_id}.")
    return role


def list_roles(s: Session, *, name: str | None = None,
               domain_id: str | None = None) -> list[Role]:
    query = select(Role).where(Role.domain_id == domain_id if domain_id else
                               Role.domain_id.is_(None)).order_by(Role.name)
    if name is not None:
        query = query.where(Role.name == name)
    return list(s.scalars(query))


def create_role(s: Session, fields: dict) -> Role:
    name = fields["name"]
    if fields.get("domain_id"):
        get_domain(s, fields["domain_id"])
    duplicate = f"Duplicate entry found with name {name}"
    if s.scalar(select(Role.id).where(Role.name == name)) is not None:
        raise _conflict("role", duplicate)
    role = Role(id=new_id(), name=name, description=fields.get("description") or "",
                domain_id=fields.get("domain_id"))
    s.add(role)
    _flush(s, "role", duplicate)
    return role


def update_role(s: Session, role_id: str, fields: dict) -> Role:
    role = get_role(s, role_id)
    name = fields.get("name", role.name)
    duplicate = f"Duplicate entry found with name {name}"
    if name != role.name:
        if role.name in DEFAULT_ROLES:
            raise Forbidden(f"You are not authorized to perform the requested action: the "
                            f"default role {role.name} cannot be renamed.")
        if s.scalar(select(Role.id).where(Role.name == name)) is not None:
            raise _conflict("role", duplicate)
        role.name = name
    if "description" in fields:
        role.description = fields["description"] or ""
    _flush(s, "role", duplicate)
    return role


def delete_role(s: Session, role_id: str) -> list[Revocation]:
    role = get_role(s, role_id)
    if role.name in DEFAULT_ROLES:
        raise Forbidden(f"You are not authorized to perform the requested action: the default "
                        f"role {role.name} cannot be deleted.")
    rows = s.execute(select(RoleAssignment.actor_id, RoleAssignment.target_id,
                            RoleAssignment.target_type)
                     .where(RoleAssignment.role_id == role.id)).all()
    s.execute(delete(RoleAssignment).where(RoleAssignment.role_id == role.id))
    s.delete(role)
    return sorted({(r.actor_id, r.target_id if r.target_type == "project" else None)
                   for r in rows}, key=lambda r: (r[0], r[1] or ""))


# ---------------------------------------------------------------- role assignments


def _get_target(s: Session, target_type: str, target_id: str) -> Project | Domain:
    return get_project(s, target_id) if target_type == "project" else get_domain(s, target_id)


def roles_of_user_on(s: Session, target_type: str, target_id: str, user_id: str) -> list[Role]:
    """Roles directly assigned to the user on the project or domain."""
    _get_target(s, target_type, target_id)
    get_user(s, user_id)
    return _roles_on(s, user_id, target_id, target_type)


def _find_grant(s: Session, target_type: str, target_id: str, user_id: str,
                role_id: str) -> RoleAssignment | None:
    _get_target(s, target_type, target_id)
    get_user(s, user_id)
    get_role(s, role_id)
    return s.scalar(select(RoleAssignment).where(
        RoleAssignment.role_id == role_id, RoleAssignment.actor_id == user_id,
        RoleAssignment.target_id == target_id, RoleAssignment.target_type == target_type))


def _assignment_not_found(role_id: str, user_id: str, target_id: str) -> NotFound:
    return NotFound(f"Could not find role assignment with role: {role_id}, user or group: "
                    f"{user_id}, project, domain, or system: {target_id}.")


def check_grant(s: Session, target_type: str, target_id: str, user_id: str, role_id: str) -> None:
    if _find_grant(s, target_type, target_id, user_id, role_id) is None:
        raise _assignment_not_found(role_id, user_id, target_id)


def grant_role(s: Session, target_type: str, target_id: str, user_id: str, role_id: str) -> None:
    if _find_grant(s, target_type, target_id, user_id, role_id) is None:
        try:
            with s.begin_nested():
                s.add(RoleAssignment(role_id=role_id, actor_id=user_id, target_id=target_id,
                                     target_type=target_type))
        except IntegrityError:  # granted concurrently: the grant exists, which is what was asked
            log.info("role %s on %s for %s was granted concurrently", role_id, target_id, user_id)


def revoke_role(s: Session, target_type: str, target_id: str, user_id: str,
                role_id: str) -> list[Revocation]:
    grant = _find_grant(s, target_type, target_id, user_id, role_id)
    if grant is None:
        raise _assignment_not_found(role_id, user_id, target_id)
    s.delete(grant)
    return [(user_id, target_id if target_type == "project" else None)]


@dataclass
class Assignment:
    """One (role, user, project or domain) triple, as /v3/role_assignments lists it."""

    role: Role
    user: User
    target_type: str  # project | domain
    target: Project | Domain
    prior_role: Role | None = None  # the assigned role this one is implied by (effective)


def list_assignments(s: Session, *, user_id: str | None = None, role_id: str | None = None,
                     project_id: str | None = None, domain_id: str | None = None,
                     effective: bool = False) -> list[Assignment]:
    """Direct assignments matching the filters; `effective` adds the roles they imply."""
    query = select(RoleAssignment)
    if user_id is not None:
        query = query.where(RoleAssignment.actor_id == user_id)
    if project_id is not None:
        query = query.where(RoleAssignment.target_type == "project",
                            RoleAssignment.target_id == project_id)
    if domain_id is not None:
        query = query.where(RoleAssignment.target_type == "domain",
                            RoleAssignment.target_id == domain_id)
    if role_id is not None and not effective:
        query = query.where(RoleAssignment.role_id == role_id)
    rows = list(s.scalars(query))
    if not rows:
        return []
    roles = {r.id: r for r in s.scalars(select(Role))}
    roles_by_name = {r.name: r for r in roles.values()}
    users = {u.id: u for u in s.scalars(select(User).where(
        User.id.in_(sorted({r.actor_id for r in rows}))))}
    projects = {p.id: p for p in s.scalars(select(Project).where(
        Project.id.in_(sorted({r.target_id for r in rows if r.target_type == "project"}))))}
    domains = {d.id: d for d in s.scalars(select(Domain).where(
        Domain.id.in_(sorted({r.target_id for r in rows if r.target_type == "domain"}))))}
    result: list[Assignment] = []
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        role, user = roles.get(row.role_id), users.get(row.actor_id)
        target = (projects if row.target_type == "project" else domains).get(row.target_id)
        if role is None or user is None or target is None:
            continue  # a dangling row (its target was removed outside the API)
        seen.add((role.id, user.id, target.id))
        result.append(Assignment(role, user, row.target_type, target))
    if effective:
        for direct in list(result):
            for implied_name in IMPLIED_ROLES.get(direct.role.name, []):
                implied = roles_by_name.get(implied_name)
                key = (implied.id, direct.user.id, direct.target.id) if implied else None
                if implied is None or key in seen:
                    continue
                seen.add(key)
                result.append(Assignment(implied, direct.user, direct.target_type, direct.target,
                                         prior_role=direct.role))
        if role_id is not None:
            result = [a for a in result if a.role.id == role_id]
    result.sort(key=lambda a: (a.target_type, a.target.name, a.user.name, a.role.name))
    return result
