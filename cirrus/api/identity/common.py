"""Helpers the identity routes share: Keystone's links, collections, flags and words."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

from cirrus.api.framework import ApiRequest
from cirrus.api.identity import schemas
from cirrus.api.validation import validate
from cirrus.errors import Forbidden
from cirrus.identity import service as identity
from cirrus.identity.compliance import PasswordPolicy
from cirrus.identity.policy import authorize

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


def _domain_for_writes(req: ApiRequest) -> str:
    """Where a new project or user goes when the body names no domain (Keystone's rule)."""
    claims = req.claims
    if claims is not None and not claims.project_id and claims.project_domain_id:
        return claims.project_domain_id
    return identity.DEFAULT_DOMAIN_ID


def _reader_domain(req: ApiRequest) -> str | None:
    """The domain a non-admin caller reads as a domain reader: that of a domain-scoped token
    carrying the reader role (Keystone's `role:reader and domain_id:%(target.domain_id)s`)."""
    claims = req.claims
    if (claims is not None and not claims.project_id and claims.project_domain_id
            and "reader" in req.ctx.roles):
        return claims.project_domain_id
    return None


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
