"""GET /v3/{project_id}/extensions: the Cinder API extensions this API serves (clients and
Tempest look for them by alias)."""

from __future__ import annotations

from cirrus.api.framework import ApiRequest
from cirrus.api.volume.common import READ, allow

UPDATED = "2023-03-28T00:00:00+00:00"
EXTENSIONS = (
    ("os-admin-actions", "AdminActions", "Enable admin actions (reset status, force delete)."),
    ("os-availability-zone", "AvailabilityZones", "Describe availability zones."),
    ("os-extended-snapshot-attributes", "ExtendedSnapshotAttributes",
     "Extended snapshot attributes (project, progress)."),
    ("os-quota-sets", "Quotas", "Quota management support."),
    ("os-types-extra-specs", "TypesExtraSpecs", "Type extra specs support."),
    ("os-types-manage", "TypesManage", "Types manage support."),
    ("os-vol-image-meta", "VolumeImageMetadata", "Show image metadata associated with the "
                                                 "volume."),
    ("os-vol-tenant-attr", "VolumeTenantAttribute", "Expose the internal project_id as an "
                                                    "attribute of a volume."),
    ("os-vol-host-attr", "VolumeHostAttribute", "Expose host as an attribute of a volume."),
    ("os-vol-mig-status-attr", "VolumeMigStatusAttribute", "Expose migration_status as an "
                                                           "attribute of a volume."),
    ("os-volume-actions", "VolumeActions", "Enable volume actions."),
    ("os-volume-type-access", "VolumeTypeAccess", "Volume type access support."),
    ("qos-specs", "Qos_specs_manage", "QoS specs support."),
)


def list_extensions(req: ApiRequest) -> dict:
    allow(req, READ, "volume:list_extensions")
    return {"extensions": [{"alias": alias, "name": name, "description": description,
                            "updated": UPDATED, "links": []}
                           for alias, name, description in EXTENSIONS]}


ROUTES = [("GET", "/v3/{project_id}/extensions", list_extensions)]
