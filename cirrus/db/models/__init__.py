"""The schema. Every change here needs an Alembic migration (cirrus/db/migrations)."""

from __future__ import annotations

from cirrus.db.models.base import NAMING, Base, Timestamp, TimestampMixin, utcnow
from cirrus.db.models.catalog import (
    ApplicationCredential,
    CatalogEndpoint,
    CatalogRegion,
    CatalogService,
    EndpointGroup,
    ProjectEndpoint,
    ProjectEndpointGroup,
)
from cirrus.db.models.compute import (
    Allocation,
    ComputeNode,
    Flavor,
    FlavorProject,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    InstanceFault,
    KeyPair,
    QuotaClassLimit,
    QuotaLimit,
    Service,
    UserQuotaLimit,
)
from cirrus.db.models.identity import (
    Domain,
    Group,
    GroupMembership,
    ImpliedRole,
    InheritedRoleAssignment,
    Project,
    Role,
    RoleAssignment,
    TokenRevocation,
    User,
)
from cirrus.db.models.identity_extra import (
    Credential,
    DomainConfigOption,
    OAuthConsumer,
    Policy,
)
from cirrus.db.models.images import Image, ImageMember
from cirrus.db.models.metadefs import (
    ImageTask,
    MetadefNamespace,
    MetadefObject,
    MetadefProperty,
    MetadefResourceTypeAssociation,
    MetadefTag,
)
from cirrus.db.models.migrations import Migration
from cirrus.db.models.network import (
    AutoAllocatedNetwork,
    IPAllocation,
    Network,
    Port,
    SecurityGroup,
    Subnet,
)
from cirrus.db.models.routers import FloatingIP, Router
from cirrus.db.models.segments import SegmentAllocation
from cirrus.db.models.subnetpools import SubnetPool
from cirrus.db.models.volumes import (
    QosSpec,
    Volume,
    VolumeAttachment,
    VolumeSnapshot,
    VolumeType,
    VolumeTypeProject,
)

__all__ = [
    "NAMING", "Timestamp", "utcnow", "Base", "TimestampMixin", "Domain", "Project", "User",
    "Role", "RoleAssignment", "Group", "GroupMembership", "ImpliedRole",
    "InheritedRoleAssignment", "TokenRevocation", "Credential", "DomainConfigOption",
    "OAuthConsumer", "Policy", "Image", "ImageMember", "Flavor", "FlavorProject", "KeyPair",
    "Service", "ComputeNode", "Allocation", "Instance", "InstanceFault", "InstanceAction",
    "InstanceActionEvent", "QuotaClassLimit", "QuotaLimit", "UserQuotaLimit", "Network",
    "Subnet", "Port", "IPAllocation", "SecurityGroup", "AutoAllocatedNetwork", "Migration",
    "ApplicationCredential", "CatalogEndpoint", "CatalogRegion", "CatalogService",
    "EndpointGroup", "ProjectEndpoint", "ProjectEndpointGroup",
    "MetadefNamespace", "MetadefObject", "MetadefProperty", "MetadefTag",
    "MetadefResourceTypeAssociation", "ImageTask",
    "SegmentAllocation",  # l2
    "Router", "FloatingIP",  # L3 (issue 14)
    "SubnetPool",  # subnet pools
    "QosSpec", "Volume", "VolumeAttachment", "VolumeSnapshot", "VolumeType",
    "VolumeTypeProject",  # block storage (issue 15)
]
