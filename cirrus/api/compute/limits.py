"""Absolute limits (GET /limits): a project's quotas and what it uses, Nova v2.1 up to 2.60.

Microversions: 2.36 drops the network-proxy limits (floating IPs, security groups); 2.39
drops maxImageMeta; 2.57 drops the personality-file limits. `rate` is always empty.
"""

from __future__ import annotations

from cirrus.api.compute.microversion import by_version
from cirrus.api.framework import ApiRequest
from cirrus.compute import quotas
from cirrus.errors import Forbidden
from cirrus.identity.policy import READ, authorize

# Quota resource -> the absolute-limit names that show it.
LIMIT_NAMES = {
    "ram": ("maxTotalRAMSize",),
    "instances": ("maxTotalInstances",),
    "cores": ("maxTotalCores",),
    "key_pairs": ("maxTotalKeypairs",),
    "floating_ips": ("maxTotalFloatingIps",),
    "metadata_items": ("maxServerMeta", "maxImageMeta"),
    "injected_files": ("maxPersonality",),
    "injected_file_content_bytes": ("maxPersonalitySize",),
    "security_groups": ("maxSecurityGroups",),
    "security_group_rules": ("maxSecurityGroupRules",),
    "server_groups": ("maxServerGroups",),
    "server_group_members": ("maxServerGroupMembers",),
}
USED_NAMES = {
    "totalRAMUsed": "ram",
    "totalCoresUsed": "cores",
    "totalInstancesUsed": "instances",
    "totalFloatingIpsUsed": "floating_ips",
    "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}
DROPPED_AT_2_36 = ("floating_ips", "security_groups", "security_group_rules")
DROPPED_AT_2_57 = DROPPED_AT_2_36 + ("injected_files", "injected_file_content_bytes")
DROPPED = by_version({("2.1", "2.35"): (), ("2.36", "2.56"): DROPPED_AT_2_36,
                      ("2.57", None): DROPPED_AT_2_57})
NAMES_DROPPED = by_version({("2.1", "2.38"): (), ("2.39", None): ("maxImageMeta",)})


def show_limits(req: ApiRequest) -> dict:
    authorize(req.ctx, READ)
    tenant = req.query.get("tenant_id")
    if tenant and tenant != req.ctx.project_id:
        if not req.ctx.is_admin:
            raise Forbidden("Policy doesn't allow os_compute_api:limits:other_project "
                            "to be performed.")
        project_id = tenant
    else:
        project_id = req.require_project()
    dropped, names_dropped = DROPPED(req), NAMES_DROPPED(req)
    with req.cloud.db.reader() as s:
        limits = quotas.get_limits(s, req.cloud.settings, project_id)
        usage = quotas.get_usage_report(s, project_id)
    absolute: dict[str, int] = {}
    for resource, names in LIMIT_NAMES.items():
        if resource in dropped:
            continue
        for name in names:
            if name in names_dropped:
                continue
            absolute[name] = limits[resource]
    for name, resource in USED_NAMES.items():
        if resource not in dropped:
            absolute[name] = usage[resource]
    return {"limits": {"rate": [], "absolute": absolute}}


ROUTES = [
    ("GET", "/v2.1/limits", show_limits),
]
