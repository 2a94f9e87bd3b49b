"""Quota sets (os-quota-sets), Nova v2.1 up to 2.60.

Members read their own project's quotas; admins read and change any project's, and with
`?user_id=` one user's quotas in it (compute/user_quotas.py: at most the project's). Microversion
2.36 drops fixed_ips, floating_ips, security_groups and security_group_rules; 2.57 drops the
injected_file* quotas (from bodies and responses alike).
"""

from __future__ import annotations

from typing import Any

from cirrus.api.compute import schemas_misc as schemas
from cirrus.api.compute.common import bounded_int
from cirrus.api.compute.microversion import by_version
from cirrus.api.framework import ApiRequest, Reply
from cirrus.api.validation import to_bool, validate
from cirrus.compute import quotas, user_quotas
from cirrus.errors import Forbidden
from cirrus.identity.policy import ADMIN, READ, authorize

# The quotas a version no longer shows or takes: 2.36 drops the proxied network and image
# ones, 2.57 the injected-file ones.
DROPPED = by_version({
    ("2.1", "2.35"): (),
    ("2.36", "2.56"): schemas.QUOTAS_DROPPED_AT_2_36,
    ("2.57", None): schemas.QUOTAS_DROPPED_AT_2_36 + schemas.QUOTAS_DROPPED_AT_2_57,
})
UPDATE_SCHEMA = by_version({("2.1", "2.35"): schemas.quota_update,
                            ("2.36", "2.56"): schemas.quota_update_v236,
                            ("2.57", None): schemas.quota_update_v257})


def _shown(req: ApiRequest) -> tuple[str, ...]:
    dropped = DROPPED(req)
    return tuple(name for name in quotas.RESOURCES if name not in dropped)


def _authorize_read(req: ApiRequest, project_id: str, action: str) -> None:
    authorize(req.ctx, READ)
    if project_id != req.ctx.project_id and not req.ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow os_compute_api:os-quota-sets:{action} "
                        "to be performed.")


def _quota_set(req: ApiRequest, project_id: str | None, values: dict[str, Any]) -> dict:
    body: dict[str, Any] = {"id": project_id} if project_id is not None else {}
    body.update({name: values[name] for name in _shown(req)})
    return {"quota_set": body}


def _user_id(req: ApiRequest) -> str | None:
    """The `user_id` query parameter (Nova's per-user quotas), empty taken as absent."""
    return req.query.get("user_id") or None


def show_quotas(req: ApiRequest, project_id: str) -> dict:
    _authorize_read(req, project_id, "show")
    user_id = _user_id(req)
    if user_id and not req.ctx.is_admin and user_id != req.ctx.user_id:
        raise Forbidden("Policy doesn't allow os_compute_api:os-quota-sets:show "
                        "to be performed.")
    with req.cloud.db.reader() as s:
        quotas.verify_project(s, project_id)
        if user_id:
            return _quota_set(req, project_id, user_quotas.get_limits(
                s, req.cloud.settings, project_id, user_id))
        return _quota_set(req, project_id, quotas.get_limits(s, req.cloud.settings, project_id))


def show_quota_details(req: ApiRequest, project_id: str) -> dict:
    _authorize_read(req, project_id, "detail")
    # Key pairs are a user's: count those of the user an admin names, else the caller's own.
    user_id = req.query.get("user_id") if req.ctx.is_admin else None
    if not user_id and project_id == req.ctx.project_id:
        user_id = req.ctx.user_id
    per_user = req.ctx.is_admin and _user_id(req) is not None
    with req.cloud.db.reader() as s:
        quotas.verify_project(s, project_id)
        if per_user and user_id:
            limits = user_quotas.get_limits(s, req.cloud.settings, project_id, user_id)
            usage = user_quotas.get_usage(s, project_id, user_id)
        else:
            limits = quotas.get_limits(s, req.cloud.settings, project_id)
            usage = quotas.get_usage_report(s, project_id, user_id)
    return _quota_set(req, project_id, {
        name: {"in_use": usage[name], "limit": limits[name], "reserved": 0}
        for name in quotas.RESOURCES})


def show_default_quotas(req: ApiRequest, project_id: str) -> dict:
    authorize(req.ctx, READ)
    with req.cloud.db.reader() as s:
        quotas.verify_project(s, project_id)
        return _quota_set(req, project_id,
                          quotas.class_limits(s, req.cloud.settings, quotas.DEFAULT_CLASS))


def update_quotas(req: ApiRequest, project_id: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-quota-sets:update")
    user_id = _user_id(req)
    body = req.json
    validate(UPDATE_SCHEMA(req), body)
    requested = dict(body["quota_set"])
    force = to_bool(requested.pop("force", False))
    values = {name: bounded_int(value, f"quota_set/{name}", quotas.UNLIMITED, quotas.MAX_LIMIT)
              for name, value in requested.items()}

    def work(s):
        quotas.verify_project(s, project_id)
        if user_id:
            user_quotas.set_limits(s, req.cloud.settings, project_id, user_id, values,
                                   force=force)
            return user_quotas.get_limits(s, req.cloud.settings, project_id, user_id)
        if not force:
            quotas.check_new_limits(s, project_id, values)
        quotas.set_limits(s, project_id, values)
        return quotas.get_limits(s, req.cloud.settings, project_id)

    # Nova leaves the id out of the update response.
    return _quota_set(req, None, req.cloud.db.run(work))


def delete_quotas(req: ApiRequest, project_id: str) -> Reply:
    authorize(req.ctx, ADMIN, "os_compute_api:os-quota-sets:delete")
    user_id = _user_id(req)

    def work(s):
        if user_id:
            user_quotas.delete_limits(s, project_id, user_id)
            return
        quotas.delete_limits(s, project_id)
        user_quotas.delete_limits(s, project_id)  # Nova drops the users' quotas too

    req.cloud.db.run(work)
    return Reply(202)


ROUTES = [
    ("GET", "/v2.1/os-quota-sets/{project_id}", show_quotas),
    ("PUT", "/v2.1/os-quota-sets/{project_id}", update_quotas),
    ("DELETE", "/v2.1/os-quota-sets/{project_id}", delete_quotas),
    ("GET", "/v2.1/os-quota-sets/{project_id}/defaults", show_default_quotas),
    ("GET", "/v2.1/os-quota-sets/{project_id}/detail", show_quota_details),
]
