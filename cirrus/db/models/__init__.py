"""The schema. Every change here needs an Alembic migration (cirrus/db/migrations)."""

from __future__ import annotations

from cirrus.db.models.base import NAMING, Base, Timestamp, TimestampMixin, utcnow
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
    QuotaLimit,
    Service,
    UserQuotaLimit,
)
from cirrus.db.models.identity import Domain, Project, Role, RoleAssignment, TokenRevocation, User
from cirrus.db.models.images import Image, ImageMember
from cirrus.db.models.network import (
    AutoAllocatedNetwork,
    IPAllocation,
    Network,
    Port,
    SecurityGroup,
    Subnet,
)

__all__ = [
    "NAMING", "Timestamp", "utcnow", "Base", "TimestampMixin", "Domain", "Project", "User",
    "Role", "RoleAssignment", "TokenRevocation", "Image", "ImageMember", "Flavor", "FlavorProject", "KeyPair",
    "Service", "ComputeNode", "Allocation", "Instance", "InstanceFault", "InstanceAction",
    "InstanceActionEvent", "QuotaLimit", "UserQuotaLimit", "Network", "Subnet", "Port", "IPAllocation",
    "SecurityGroup", "AutoAllocatedNetwork"
]
