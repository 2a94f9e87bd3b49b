"""os-instance_usage_audit_log (admin): the usage audit of the last completed month,
derived from the instances table (see cirrus/compute/audit.py for how)."""

from __future__ import annotations

import datetime as dt

from cirrus.api.framework import ApiRequest
from cirrus.compute import audit
from cirrus.db.models.base import utcnow
from cirrus.errors import BadRequest
from cirrus.identity.policy import ADMIN, authorize

# Nova parses the path's timestamp with these formats, nothing else.
_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")


def _parse_before(value: str) -> dt.datetime:
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise BadRequest(f"Invalid timestamp for date {value}")


def list_audit_logs(req: ApiRequest) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-instance-usage-audit-log:list")
    with req.cloud.db.reader() as s:
        return {"instance_usage_audit_logs": audit.audit_log(s, utcnow())}


def show_audit_log(req: ApiRequest, before_timestamp: str) -> dict:
    authorize(req.ctx, ADMIN, "os_compute_api:os-instance-usage-audit-log:show")
    before = _parse_before(before_timestamp)
    with req.cloud.db.reader() as s:
        return {"instance_usage_audit_log": audit.audit_log(s, before)}


ROUTES = [
    ("GET", "/v2.1/os-instance_usage_audit_log", list_audit_logs),
    ("GET", "/v2.1/os-instance_usage_audit_log/{before_timestamp}", show_audit_log),
]
