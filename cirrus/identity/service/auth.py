"""Authentication: passwords and tokens checked, the scope resolved, a token's claims built."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import Domain, Project, Role, User, utcnow
from cirrus.errors import BadRequest, NotFound, Unauthorized
from cirrus.identity.compliance import PasswordPolicy, expired_error, locked_error, password_expired
from cirrus.identity.passwords import hash_password, verify_password
from cirrus.identity.service import implied
from cirrus.identity.service.common import DEFAULT_POLICY, SYSTEM_ID, FailedLogin
from cirrus.identity.service.projects import _usable_project
from cirrus.identity.service.roles import _roles_on

if TYPE_CHECKING:
    from cirrus.identity.tokens import TokenProvider

log = logging.getLogger(__name__)
Named = TypeVar("Named", User, Project)


def _expanded_role_refs(s: Session, assigned: list[Role]) -> list[dict]:
    """Assigned roles plus the ones they imply, as [{"id", "name"}] (what a token carries)."""
    return [{"id": r.id, "name": r.name} for r in implied.expand_roles(s, assigned)]


def _scoped_roles(s: Session, user: User, target_id: str, target_type: str) -> list[dict]:
    """The user's roles (their own and their groups') on the target, implied ones included;
    Unauthorized when there are none (Keystone's answer to a scope without a role)."""
    assigned = _roles_on(s, user.id, target_id, target_type, groups=True)
    if target_type == "project":  # and what the project's domain and ancestors pass down
        from cirrus.identity.service.inherit import inherited_roles_on_project  # import cycle

        assigned += [r for r in inherited_roles_on_project(s, user.id, target_id)
                     if r not in assigned]
    roles = _expanded_role_refs(s, assigned)
    if not roles:  # none, or only domain-specific roles that imply nothing
        log.info("user %s has no role on %s %s", user.id, target_type, target_id)
        raise Unauthorized()
    return roles


def build_claims(s: Session, tokens: TokenProvider, user: User, project: Project | None,
                 *, domain: Domain | None = None, system: bool = False,
                 methods: list[str] | None = None, roles: list[Role] | None = None):
    """Claims for a token of `user`, scoped to `project`, else to `domain`, else to the system,
    else unscoped.

    The roles are the user's and their groups', with the roles they imply (admin implies
    member implies reader, and the stored inference rules), as Keystone does.
    A domain-scoped token carries the domain in the project_domain fields and no project.
    `roles` (an application credential's) replaces the user's assigned roles on the project.
    """
    user_domain = s.get(Domain, user.domain_id)
    kwargs: dict = dict(user_id=user.id, user_name=user.name, user_domain_id=user.domain_id,
                        user_domain_name=user_domain.name if user_domain else user.domain_id,
                        methods=list(methods or ["password"]))
    if user.password_expires_at is not None:
        kwargs["password_expires_at"] = user.password_expires_at.replace(
            tzinfo=dt.UTC).timestamp()
    if project is not None:
        if roles is not None:  # an application credential's roles, implied ones included
            if not roles:
                log.info("user %s has no role on project %s", user.id, project.id)
                raise Unauthorized()
            scoped = _expanded_role_refs(s, roles)
        else:
            scoped = _scoped_roles(s, user, project.id, "project")
        project_domain = s.get(Domain, project.domain_id)
        kwargs.update(
            project_id=project.id, project_name=project.name, project_domain_id=project.domain_id,
            project_domain_name=project_domain.name if project_domain else project.domain_id,
            roles=scoped,
        )
    elif domain is not None:
        kwargs.update(project_domain_id=domain.id, project_domain_name=domain.name,
                      roles=_scoped_roles(s, user, domain.id, "domain"))
    elif system:
        kwargs.update(system=True, roles=_scoped_roles(s, user, SYSTEM_ID, "system"))
    return tokens.new_claims(**kwargs)


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


def _named_in_domain(s: Session, model: type[Named], ref: dict, kind: str) -> Named | None:
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


def authenticate(s: Session, tokens: TokenProvider, identity: dict, scope: Any,
                 policy: PasswordPolicy = DEFAULT_POLICY):
    """Claims for a new token from a Keystone auth request's identity and scope, and its user.

    Methods: "password", or "token" (re-scoping a valid token; the new one expires no later).
    """
    methods = identity["methods"]
    if "application_credential" in methods:
        from cirrus.identity.service import app_credentials

        if methods != ["application_credential"]:
            raise Unauthorized("Attempted to authenticate with an unsupported method.")
        return app_credentials.authenticate(s, tokens, identity, scope)
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
        if parent.application_credential is not None:  # it would lose its restrictions
            raise _auth_failure("a token from an application credential cannot be re-scoped")
        user = user_of_token(s, parent.user_id)
        token_methods = list(dict.fromkeys(["token", *parent.methods]))
    project, domain = resolve_scope(s, user, scope)
    system = isinstance(scope, dict) and "system" in scope
    claims = build_claims(s, tokens, user, project, domain=domain, system=system,
                          methods=token_methods)
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
        if project is not None:
            try:
                _scoped_roles(s, user, project.id, "project")
            except Unauthorized:
                return None, None
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
    if kinds[0] == "system":
        if scope["system"] != {"all": True}:
            raise BadRequest("Only the system scope {\"all\": true} is supported.")
        return None, None
    raise _auth_failure("%s scope is not supported", kinds[0])
