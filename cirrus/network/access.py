"""Who may see and change networking resources, in Neutron's terms.

Roles as everywhere in Cirrus (admin > member > reader). Visibility as Neutron's default
policy: a project sees its own resources; every project also sees shared and external
networks and the subnets on shared networks; an admin sees everything. A resource the
caller cannot see answers 404; one it can see but not change answers 403
(PolicyNotAuthorized), as Neutron does.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, or_, true

from cirrus.context import RequestContext
from cirrus.db.models import Network
from cirrus.identity.policy import expand_roles
from cirrus.network.errors import BadAttribute, PolicyNotAuthorized

READ, WRITE, ADMIN = "reader", "member", "admin"


def require(ctx: RequestContext, level: str, action: str) -> None:
    """PolicyNotAuthorized unless the caller holds role `level` (or admin)."""
    if not ctx.is_admin and level not in expand_roles(ctx.roles):
        raise PolicyNotAuthorized(action)


def require_owner(ctx: RequestContext, project_id: str | None, action: str) -> None:
    """A change to a resource the caller can see: its project's members, or an admin."""
    require(ctx, WRITE, action)
    if not owns(ctx, project_id):
        raise PolicyNotAuthorized(action)


def require_project(ctx: RequestContext) -> str:
    if not ctx.project_id:
        raise PolicyNotAuthorized("project_scope")
    return ctx.project_id


def owns(ctx: RequestContext, project_id: str | None) -> bool:
    return ctx.is_admin or (project_id is not None and project_id == ctx.project_id)


def owner_for_create(ctx: RequestContext, requested: str | None) -> str:
    """The project a new resource belongs to: the caller's, or any an admin names."""
    project_id = requested or require_project(ctx)
    if project_id != ctx.project_id and not ctx.is_admin:
        raise BadAttribute("project_id", "Specifying 'project_id' other than the authenticated "
                           "project in request is not allowed for the current user")
    return project_id


def network_visible(ctx: RequestContext) -> ColumnElement[bool]:
    """SQL condition: networks the caller can see."""
    if ctx.is_admin:
        return true()
    return or_(Network.project_id == ctx.project_id, Network.shared.is_(True),
               Network.external.is_(True))


def can_see_network(ctx: RequestContext, network: Network) -> bool:
    return owns(ctx, network.project_id) or network.shared or network.external


def can_use_network(ctx: RequestContext, network: Network) -> bool:
    """May the caller put a port (or a subnet's address) on this network?"""
    return owns(ctx, network.project_id) or network.shared


def new_id() -> str:
    return str(uuid.uuid4())


def column_filters(model: type, filters: dict[str, list]) -> list[ColumnElement[bool]]:
    """SQL conditions for exact-match list filters on columns ({attribute: [values]}, any
    value matching), as Neutron's list filters work."""
    return [getattr(model, name).in_(values) for name, values in filters.items()]
